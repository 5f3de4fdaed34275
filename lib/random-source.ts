import { nanoid } from 'nanoid'

/** The default message: a unique id, a short text and the time it was made. */
export interface RandomMessage {
  id: string
  text: string
  time: string
}

const SUBJECTS = ['The server', 'A client', 'The stream', 'Somebody', 'The build', 'A proxy', 'The cache', 'The hub']
const VERBS = ['says', 'reports', 'notices', 'announces', 'confirms', 'suggests']
const OBJECTS = ['hello', 'all is well', 'the sky is clear', 'a new message', 'it is still here', 'nothing was lost', 'the queue is empty']

function pick (words: readonly string[]): string {
  return words[Math.floor(Math.random() * words.length)] as string
}

/** The default source: one random message per call, like the classic push-stream demo. */
export function randomMessages (): RandomMessage {
  return {
    id: nanoid(),
    text: `${pick(SUBJECTS)} ${pick(VERBS)}: ${pick(OBJECTS)}`,
    time: new Date().toISOString()
  }
}
