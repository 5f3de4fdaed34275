// Builds dist/client/index.js: the client and its SSE parser in one ES module,
// which the plugin serves as `<path>/client.js` and the `./client` export names.
// Its declarations come from `tsc -p tsconfig.client.json` (emitDeclarationOnly).
import { build } from 'esbuild'

await build({
  entryPoints: [new URL('../lib/client/index.ts', import.meta.url).pathname],
  outfile: new URL('../dist/client/index.js', import.meta.url).pathname,
  bundle: true,
  format: 'esm',
  target: 'es2020',
  platform: 'neutral',
  // Served as it is built: the limit of 5 KB gzipped is for this file.
  minify: true,
  // The bundled parser's notice, as its MIT license asks.
  banner: { js: '/*! includes eventsource-parser, (c) Espen Hovlandsdal, MIT License: https://github.com/rexxars/eventsource-parser */' },
  legalComments: 'inline',
  logLevel: 'warning'
})
