// The benchmark's load client: one single-threaded epoll loop that opens N SSE
// streams, parses every event, checks that each stream gets every event once and
// in order, and measures latency. bench/load-client.ts builds it with gcc, starts
// it and relays the bench's RPC calls to it.
//
// Protocol: one command per line on stdin, one JSON line per command on stdout,
// in order (a command starts when the one before it has been answered). At start
// it writes {"ready":true,"pid":P,"maxFiles":F}.
//
//   connect PORT N FIRST_SEQ [CONCURRENCY [SOURCE_ADDRESS...]]
//       -> {"ms":M,"failed":F[,"firstError":"..."]}
//       (at most CONCURRENCY handshakes at a time, 200 by default; sockets bound
//       to the source addresses in turn)
//   expect UNTIL TIMEOUT_MS
//       -> {"delivered":..,"lost":..,"outOfOrder":..,"dropped":..,"malformed":..,
//           "timedOut":bool,"firstPublished":T|null,"lastReceived":T,
//           "p50":ms|null,"p99":ms|null,"clientCpuMicros":us}
//   stall PORT    -> {}
//   closeAll      -> {"closed":COUNT}
//   stop          -> {} and exits
//
// A command that fails answers {"error":"..."}. End of input exits too.
// Non-finite numbers (no event in a window) are written as null. A window runs
// from the previous window's report (or closeAll) to its own: its counts and
// clientCpuMicros, this process's user + system CPU time, cover that span.
// closeAll also drops what the window had counted.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define READ_SIZE (256 * 1024)
#define MAX_EVENTS 4096
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_SOURCES 256
// When a wait returned fewer ready sockets than this, the next one comes after a
// pause of COALESCE_NS, so that under load one epoll_wait serves dozens of reads
// instead of one or two. It delays a read by at most that long.
#define COALESCE_BELOW 64
#define COALESCE_NS 100000
#define OPEN_EVENT "push-stream:open"

enum state { CONNECTING, HEADERS, BODY, STALL_CONNECTING, STALLED };

// Where the chunked decoder is inside the body.
enum chunk_state { SIZE, SIZE_EXT, SIZE_LF, DATA, DATA_CR, DATA_LF, TRAILER_START, TRAILER_LINE };

typedef struct {
  char *p;
  size_t len, cap;
} buffer;

typedef struct stream {
  int fd;
  uint32_t index; // in `streams`
  uint8_t state;
  uint8_t chunk_state;
  bool chunked;
  bool live;
  bool pending_cr;  // the last byte fed was a CR: an LF right after it ends no line
  bool has_data;    // the event being read has a data field
  bool skip_event;  // the event being read is named push-stream:open
  uint8_t size_digits;
  uint64_t chunk_left;
  int64_t next;     // the sequence number this stream expects next
  buffer line;      // a partial line, or the response head before the body starts
  buffer data;      // the data of the event being read
} stream;

static const char REQUEST[] = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";

static int epfd;
static char *read_buffer;
static double received_at; // wall clock (ms) of the last read, the arrival time of what it holds

// Every socket this client holds.
static stream **streams;
static size_t stream_count, stream_cap;
static long live_count;

// The window being waited for: every live stream must get up to `target`.
static int64_t target = -1;
static long reached;
static struct {
  int64_t delivered, lost, out_of_order, dropped, malformed;
} counts;
static double first_published;
static double last_received;
static double *latencies;
static size_t latency_count, latency_cap;
static int64_t cpu_mark;

// The command being run, if any.
static struct {
  bool active;
  int port;
  long n, started, finished, failed;
  long concurrency, in_flight;
  int64_t first_seq;
  double start;
  struct in_addr sources[MAX_SOURCES];
  int source_count, source_next;
  char first_error[256];
} conn;

static struct {
  bool active;
  int64_t until;
  int64_t deadline_ns; // CLOCK_MONOTONIC
} exp_cmd;

static bool stall_pending;

// Commands read from stdin and not yet run.
static buffer input;

static void die (const char *what) {
  fprintf(stderr, "load client: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double wall_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t cpu_micros (void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void reserve (buffer *b, size_t extra) {
  size_t need = b->len + extra + 1; // room for a terminating NUL
  if (need <= b->cap) return;
  size_t cap = b->cap < 128 ? 128 : b->cap;
  while (cap < need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (p == NULL) die("realloc");
  b->p = p;
  b->cap = cap;
}

static void append (buffer *b, const char *p, size_t n) {
  reserve(b, n);
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

// Output ----------------------------------------------------------------

static void write_all (const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      exit(0); // nobody reads the answers any more
    }
    p += w;
    n -= (size_t)w;
  }
}

static void answer (const char *json) {
  size_t n = strlen(json);
  char *line = malloc(n + 1);
  if (line == NULL) die("malloc");
  memcpy(line, json, n);
  line[n] = '\n';
  write_all(line, n + 1);
  free(line);
}

// Appends `s` as a JSON string.
static void json_string (buffer *out, const char *s) {
  append(out, "\"", 1);
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char esc[2] = { '\\', (char)c };
      append(out, esc, 2);
    } else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      append(out, esc, 6);
    } else {
      append(out, (const char *)&c, 1);
    }
  }
  append(out, "\"", 1);
}

static void answer_error (const char *message) {
  buffer out = { 0 };
  append(&out, "{\"error\":", 9);
  json_string(&out, message);
  append(&out, "}", 1);
  out.p[out.len] = '\0';
  answer(out.p);
  free(out.p);
}

// A number for JSON: null when it is not finite.
static const char *number (char *buf, size_t size, double v) {
  if (!__builtin_isfinite(v)) return "null";
  snprintf(buf, size, "%.17g", v);
  return buf;
}

// Streams ---------------------------------------------------------------

static stream *new_stream (int fd, enum state state) {
  stream *s = calloc(1, sizeof *s);
  if (s == NULL) die("calloc");
  s->fd = fd;
  s->state = (uint8_t)state;
  if (stream_count == stream_cap) {
    stream_cap = stream_cap == 0 ? 1024 : stream_cap * 2;
    stream **grown = realloc(streams, stream_cap * sizeof *streams);
    if (grown == NULL) die("realloc");
    streams = grown;
  }
  s->index = (uint32_t)stream_count;
  streams[stream_count++] = s;
  return s;
}

// Closes the socket (which leaves the epoll set) and forgets the stream.
static void free_stream (stream *s) {
  close(s->fd);
  stream *last = streams[--stream_count];
  streams[s->index] = last;
  last->index = s->index;
  free(s->line.p);
  free(s->data.p);
  free(s);
}

// Counting events ---------------------------------------------------------

static const char *skip_ws (const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

// Past the closing quote of the string whose opening quote is at p; NULL if it does not end.
static const char *skip_string (const char *p, const char *end) {
  p++;
  for (;;) {
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL) return NULL;
    const char *b = q;
    while (b > p && b[-1] == '\\') b--;
    if (((q - b) & 1) == 0) return q + 1;
    p = q + 1;
  }
}

static const char *skip_value (const char *p, const char *end) {
  if (*p == '"') return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      char c = *p;
      if (c == '"') {
        p = skip_string(p, end);
        if (p == NULL) return NULL;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      else if ((c == '}' || c == ']') && --depth == 0) return p + 1;
      p++;
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') p++;
  return p;
}

// A JSON number at p (NUL-terminated text). When its digits, the point left out, make an integer
// of at most 2^53 with at most 22 of them after the point, digits / 10^k divides two exact doubles
// and rounds once: the double strtod gives. Anything else goes to strtod.
static const char *read_number (const char *p, double *out) {
  static const double powers[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
  };
  const char *q = p + (*p == '-');
  if (!(*q >= '0' && *q <= '9')) return NULL;
  uint64_t digits = 0;
  int count = 0, after_point = 0;
  while (*q >= '0' && *q <= '9' && count < 19) digits = digits * 10 + (uint64_t)(*q++ - '0'), count++;
  if (*q == '.') {
    q++;
    while (*q >= '0' && *q <= '9' && count < 19) digits = digits * 10 + (uint64_t)(*q++ - '0'), count++, after_point++;
  }
  if (!(*q >= '0' && *q <= '9') && *q != 'e' && *q != 'E' && q[-1] != '.' && digits <= (1ULL << 53) && after_point <= 22) {
    double v = (double)digits / powers[after_point];
    *out = *p == '-' ? -v : v;
    return q;
  }
  char *e;
  *out = strtod(p, &e);
  return e == p ? NULL : e;
}

// Reads the numbers "seq" and "t" of an event's JSON data (NUL-terminated).
static bool scan_event (const char *p, size_t n, double *seq, double *t) {
  const char *end = p + n;
  bool has_seq = false, has_t = false;
  p = skip_ws(p, end);
  if (p == end || *p != '{') return false;
  p++;
  for (;;) {
    p = skip_ws(p, end);
    if (p == end) return false;
    if (*p == '}') { p++; break; }
    if (*p != '"') return false;
    const char *key = p + 1;
    p = skip_string(p, end);
    if (p == NULL) return false;
    size_t key_len = (size_t)(p - 1 - key);
    p = skip_ws(p, end);
    if (p == end || *p != ':') return false;
    p = skip_ws(p + 1, end);
    if (p == end) return false;
    int which = key_len == 3 && memcmp(key, "seq", 3) == 0 ? 1 : key_len == 1 && key[0] == 't' ? 2 : 0;
    if (which != 0) {
      double v;
      p = read_number(p, &v);
      if (p == NULL) return false;
      if (which == 1) *seq = v, has_seq = true;
      else *t = v, has_t = true;
    } else {
      p = skip_value(p, end);
      if (p == NULL) return false;
    }
    p = skip_ws(p, end);
    if (p == end) return false;
    if (*p == ',') { p++; continue; }
    if (*p == '}') { p++; break; }
    return false;
  }
  return has_seq && has_t && skip_ws(p, end) == end;
}

static void record (stream *s) {
  double seq = 0, t = 0;
  s->data.p[s->data.len] = '\0';
  if (!scan_event(s->data.p, s->data.len, &seq, &t)) {
    counts.malformed++;
    return;
  }
  int64_t before = s->next;
  if (seq < (double)before) {
    counts.out_of_order++;
    return;
  }
  int64_t got = (int64_t)seq;
  counts.lost += got - before;
  s->next = got + 1;
  counts.delivered++;
  if (latency_count == latency_cap) {
    latency_cap = latency_cap == 0 ? 1 << 16 : latency_cap * 2;
    double *grown = realloc(latencies, latency_cap * sizeof *latencies);
    if (grown == NULL) die("realloc");
    latencies = grown;
  }
  latencies[latency_count++] = received_at - t;
  if (t < first_published) first_published = t;
  last_received = received_at;
  if (before <= target && s->next > target) reached++;
}

// The server ended a stream that was open.
static void ended (stream *s) {
  if (s->live) {
    s->live = false;
    live_count--;
    counts.dropped++;
    // It will never reach the target: count what it misses and stop waiting for it.
    if (s->next <= target) {
      counts.lost += target + 1 - s->next;
      s->next = target + 1;
    } else if (target >= 0) {
      reached--;
    }
  }
  free_stream(s);
}

// SSE -------------------------------------------------------------------

static void sse_line (stream *s, const char *p, size_t len) {
  if (len == 0) {
    if (s->has_data && !s->skip_event) record(s);
    s->has_data = false;
    s->skip_event = false;
    s->data.len = 0;
    return;
  }
  if (p[0] == ':') return; // a comment
  const char *colon = memchr(p, ':', len);
  size_t name_len = colon != NULL ? (size_t)(colon - p) : len;
  const char *value = colon != NULL ? colon + 1 : p + len;
  size_t value_len = (size_t)(p + len - value);
  if (value_len > 0 && *value == ' ') value++, value_len--;
  if (name_len == 4 && memcmp(p, "data", 4) == 0) {
    if (s->has_data) append(&s->data, "\n", 1);
    append(&s->data, value, value_len);
    s->has_data = true;
  } else if (name_len == 5 && memcmp(p, "event", 5) == 0) {
    s->skip_event = value_len == sizeof OPEN_EVENT - 1 && memcmp(value, OPEN_EVENT, value_len) == 0;
  }
}

// Feeds body text: lines end with CRLF, LF or CR.
static void sse_feed (stream *s, const char *p, size_t n) {
  const char *end = p + n;
  if (s->pending_cr) {
    s->pending_cr = false;
    if (p < end && *p == '\n') p++;
  }
  while (p < end) {
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    const char *stop = lf != NULL ? lf : end;
    const char *cr = memchr(p, '\r', (size_t)(stop - p));
    const char *eol = cr != NULL ? cr : lf;
    if (eol == NULL) {
      append(&s->line, p, (size_t)(end - p));
      return;
    }
    if (s->line.len > 0) {
      append(&s->line, p, (size_t)(eol - p));
      sse_line(s, s->line.p, s->line.len);
      s->line.len = 0;
    } else {
      sse_line(s, p, (size_t)(eol - p));
    }
    p = eol + 1;
    if (*eol == '\r') {
      if (p == end) s->pending_cr = true;
      else if (*p == '\n') p++;
    }
  }
}

static int hex_value (char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Feeds body bytes; false when the body ended (last chunk) or is not valid chunked coding.
static bool body_feed (stream *s, const char *p, size_t n) {
  if (!s->chunked) {
    sse_feed(s, p, n);
    return true;
  }
  const char *end = p + n;
  while (p < end) {
    switch (s->chunk_state) {
      case SIZE: {
        int v = hex_value(*p);
        if (v >= 0) {
          if (s->size_digits >= 15) return false;
          s->chunk_left = s->chunk_left * 16 + (uint64_t)v;
          s->size_digits++;
          p++;
          break;
        }
        if (s->size_digits == 0) return false;
        if (*p == '\r') s->chunk_state = SIZE_LF;
        else if (*p == '\n') goto size_done;
        else if (*p == ';' || *p == ' ' || *p == '\t') s->chunk_state = SIZE_EXT;
        else return false;
        p++;
        break;
      }
      case SIZE_EXT: {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (lf == NULL) return true;
        p = lf;
        goto size_done;
      }
      case SIZE_LF:
        if (*p != '\n') return false;
      size_done:
        p++;
        s->size_digits = 0;
        s->chunk_state = s->chunk_left == 0 ? TRAILER_START : DATA;
        break;
      case DATA: {
        size_t take = (size_t)(end - p) < s->chunk_left ? (size_t)(end - p) : (size_t)s->chunk_left;
        sse_feed(s, p, take);
        p += take;
        s->chunk_left -= take;
        if (s->chunk_left == 0) s->chunk_state = DATA_CR;
        break;
      }
      case DATA_CR:
        if (*p == '\r') s->chunk_state = DATA_LF;
        else if (*p == '\n') s->chunk_state = SIZE;
        else return false;
        p++;
        break;
      case DATA_LF:
        if (*p != '\n') return false;
        s->chunk_state = SIZE;
        p++;
        break;
      case TRAILER_START:
        if (*p == '\n') return false; // the blank line after the last chunk: the body is complete
        if (*p != '\r') s->chunk_state = TRAILER_LINE;
        p++;
        break;
      case TRAILER_LINE: {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (lf == NULL) return true;
        p = lf + 1;
        s->chunk_state = TRAILER_START;
        break;
      }
    }
  }
  return true;
}

// Connecting ------------------------------------------------------------

static void start_more (void);
static void finish_connect_if_done (void);

// A stream's handshake is over, opened or failed.
static void handshake_done (void) {
  conn.in_flight--;
  conn.finished++;
  start_more();
  finish_connect_if_done();
}

static void note_failure (const char *message) {
  conn.failed++;
  if (conn.first_error[0] == '\0') snprintf(conn.first_error, sizeof conn.first_error, "%s", message);
}

static void stream_failed (stream *s, const char *message) {
  if (s->state == STALL_CONNECTING) {
    stall_pending = false;
    answer_error(message);
  } else {
    note_failure(message);
    handshake_done();
  }
  free_stream(s);
}

// A new socket to 127.0.0.1:port, connecting; -1 with `message` set when it failed at once.
static int open_socket (int port, const struct in_addr *source, char *message, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(message, size, "socket: %s", strerror(errno));
    return -1;
  }
  if (source != NULL) {
    int one = 1;
    // The port is chosen at connect time, by the whole 4-tuple: many more streams per source address.
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = 0, .sin_addr = *source };
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
      char ip[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, source, ip, sizeof ip);
      snprintf(message, size, "bind %s: %s", ip, strerror(errno));
      close(fd);
      return -1;
    }
  }
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
    snprintf(message, size, "connect 127.0.0.1:%d: %s", port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static bool watch (stream *s, uint32_t events) {
  struct epoll_event ev = { .events = events, .data.ptr = s };
  return epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0;
}

static void start_more (void) {
  while (conn.active && conn.started < conn.n && conn.in_flight < conn.concurrency) {
    conn.started++;
    const struct in_addr *source = NULL;
    if (conn.source_count > 0) {
      source = &conn.sources[conn.source_next];
      conn.source_next = (conn.source_next + 1) % conn.source_count;
    }
    char message[200];
    int fd = open_socket(conn.port, source, message, sizeof message);
    if (fd < 0) {
      note_failure(message);
      conn.finished++;
      continue;
    }
    stream *s = new_stream(fd, CONNECTING);
    s->next = conn.first_seq;
    conn.in_flight++;
    if (!watch(s, EPOLLOUT)) {
      snprintf(message, sizeof message, "epoll_ctl: %s", strerror(errno));
      stream_failed(s, message);
    }
  }
}

static void finish_connect_if_done (void) {
  if (!conn.active || conn.finished < conn.n) return;
  conn.active = false;
  buffer out = { 0 };
  char head[128];
  int n = snprintf(head, sizeof head, "{\"ms\":%.3f,\"failed\":%ld", wall_ms() - conn.start, conn.failed);
  append(&out, head, (size_t)n);
  if (conn.failed > 0) {
    append(&out, ",\"firstError\":", 14);
    json_string(&out, conn.first_error);
  }
  append(&out, "}", 1);
  out.p[out.len] = '\0';
  answer(out.p);
  free(out.p);
}

// The socket is writable: connected, or failed to.
static void on_connected (stream *s) {
  int err = 0;
  socklen_t len = sizeof err;
  char message[200];
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    snprintf(message, sizeof message, "connect: %s", strerror(err));
    stream_failed(s, message);
    return;
  }
  ssize_t w = send(s->fd, REQUEST, sizeof REQUEST - 1, MSG_NOSIGNAL);
  if (w != (ssize_t)(sizeof REQUEST - 1)) {
    snprintf(message, sizeof message, "sending the request: %s", w < 0 ? strerror(errno) : "short write");
    stream_failed(s, message);
    return;
  }
  if (s->state == STALL_CONNECTING) {
    // Never read: the server's writes pile up in the socket buffers, then in the server.
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->state = STALLED;
    stall_pending = false;
    answer("{}");
    return;
  }
  // Edge-triggered: epoll_wait does not poll every ready socket again on its next call.
  struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = s };
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) != 0) {
    snprintf(message, sizeof message, "epoll_ctl: %s", strerror(errno));
    stream_failed(s, message);
    return;
  }
  s->state = HEADERS;
}

static bool has_token (const char *p, size_t n, const char *token) {
  size_t t = strlen(token);
  for (size_t i = 0; i + t <= n; i++) if (strncasecmp(p + i, token, t) == 0) return true;
  return false;
}

// Reads the response head in s->line[0..len): true when it is a 200; otherwise `message` says why.
static bool parse_head (stream *s, size_t len, char *message, size_t size) {
  const char *p = s->line.p;
  const char *end = p + len;
  const char *eol = memchr(p, '\n', len);
  if (len < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || eol == NULL) {
    snprintf(message, size, "not an HTTP/1.x response");
    return false;
  }
  int status = 0;
  for (int i = 9; i < 12; i++) {
    if (p[i] < '0' || p[i] > '9') {
      snprintf(message, size, "not an HTTP/1.x response");
      return false;
    }
    status = status * 10 + p[i] - '0';
  }
  if (status != 200) {
    snprintf(message, size, "status %d", status);
    return false;
  }
  for (p = eol + 1; p < end; p = eol + 1) {
    eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL) break;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon == NULL) continue;
    if (colon - p == 17 && strncasecmp(p, "transfer-encoding", 17) == 0 && has_token(colon + 1, (size_t)(eol - colon - 1), "chunked")) {
      s->chunked = true;
    }
  }
  return true;
}

// Takes `r` bytes just read into read_buffer: the response head first, then the body.
// False when the stream is gone (ended, or failed to open).
static bool take (stream *s, size_t r) {
  if (s->state == BODY) {
    if (body_feed(s, read_buffer, r)) return true;
    ended(s);
    return false;
  }
  size_t old = s->line.len;
  append(&s->line, read_buffer, r);
  size_t head_end = 0;
  for (size_t i = old > 3 ? old - 3 : 0; i < s->line.len; i++) {
    if (s->line.p[i] != '\n') continue;
    if (i + 1 < s->line.len && s->line.p[i + 1] == '\n') { head_end = i + 2; break; }
    if (i + 2 < s->line.len && s->line.p[i + 1] == '\r' && s->line.p[i + 2] == '\n') { head_end = i + 3; break; }
  }
  if (head_end == 0) {
    if (s->line.len <= MAX_HEADER_BYTES) return true;
    stream_failed(s, "response head too large");
    return false;
  }
  char message[200];
  if (!parse_head(s, head_end, message, sizeof message)) {
    stream_failed(s, message);
    return false;
  }
  size_t rest = s->line.len - head_end; // the start of the body, all from this read
  s->line.len = 0;
  s->state = BODY;
  s->chunk_state = SIZE;
  s->live = true;
  live_count++;
  handshake_done();
  if (rest == 0 || body_feed(s, read_buffer + r - rest, rest)) return true;
  ended(s);
  return false;
}

// The socket is readable. Its events are edge-triggered: it is read until a read
// comes back short, which for TCP means the receive queue was empty.
static void on_readable (stream *s) {
  for (;;) {
    ssize_t r = recv(s->fd, read_buffer, READ_SIZE, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      if (s->state == HEADERS) {
        char message[200];
        snprintf(message, sizeof message, "reading the response: %s", strerror(errno));
        stream_failed(s, message);
      } else {
        ended(s);
      }
      return;
    }
    if (r == 0) {
      if (s->state == HEADERS) stream_failed(s, "the server closed the connection before the response head");
      else ended(s);
      return;
    }
    received_at = wall_ms();
    if (!take(s, (size_t)r) || r < READ_SIZE) return;
  }
}

// Commands ----------------------------------------------------------------

static int64_t now_ns_mono (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void reset_window (void) {
  memset(&counts, 0, sizeof counts);
  first_published = __builtin_inf();
  last_received = 0;
  latency_count = 0;
  target = -1;
  reached = 0;
  cpu_mark = cpu_micros();
}

// Puts the k-th smallest of a[0..n) at a[k], none larger before it and none smaller after it.
static void select_kth (double *a, size_t n, size_t k) {
  long lo = 0, hi = (long)n - 1, kk = (long)k;
  while (lo < hi) {
    // The median of three values as the pivot, so runs already in order stay quick.
    double x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
    double pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
    long i = lo, j = hi;
    do {
      while (a[i] < pivot) i++;
      while (pivot < a[j]) j--;
      if (i <= j) {
        double t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    } while (i <= j);
    if (j < kk) lo = i;
    if (kk < i) hi = j;
  }
}

// Nearest rank, as bench/stats.ts's percentile.
static size_t rank (size_t n, double q) {
  double x = q * (double)n;
  size_t r = (size_t)x;
  if ((double)r < x) r++;
  if (r == 0) r = 1;
  return r - 1 < n - 1 ? r - 1 : n - 1;
}

static void finish_expect (bool timed_out) {
  exp_cmd.active = false;
  if (timed_out) {
    for (size_t i = 0; i < stream_count; i++) {
      stream *s = streams[i];
      if (s->live && s->next <= exp_cmd.until) {
        counts.lost += exp_cmd.until + 1 - s->next;
        s->next = exp_cmd.until + 1;
      }
    }
  }
  double p50 = __builtin_nan(""), p99 = __builtin_nan("");
  if (latency_count > 0) {
    size_t k50 = rank(latency_count, 0.5), k99 = rank(latency_count, 0.99);
    select_kth(latencies, latency_count, k50);
    p50 = latencies[k50];
    select_kth(latencies + k50, latency_count - k50, k99 - k50);
    p99 = latencies[k99];
  }
  char out[512], a[32], b[32], c[32], d[32];
  snprintf(out, sizeof out,
    "{\"delivered\":%lld,\"lost\":%lld,\"outOfOrder\":%lld,\"dropped\":%lld,\"malformed\":%lld,"
    "\"timedOut\":%s,\"firstPublished\":%s,\"lastReceived\":%s,\"p50\":%s,\"p99\":%s,\"clientCpuMicros\":%lld}",
    (long long)counts.delivered, (long long)counts.lost, (long long)counts.out_of_order,
    (long long)counts.dropped, (long long)counts.malformed, timed_out ? "true" : "false",
    number(a, sizeof a, first_published), number(b, sizeof b, last_received),
    number(c, sizeof c, p50), number(d, sizeof d, p99), (long long)(cpu_micros() - cpu_mark));
  reset_window();
  answer(out);
}

static void check_expect (void) {
  if (!exp_cmd.active) return;
  if (reached >= live_count) finish_expect(false);
  else if (now_ns_mono() >= exp_cmd.deadline_ns) finish_expect(true);
}

static bool parse_int (const char *s, long long min, long long max, long long *out) {
  if (s == NULL || *s == '\0') return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

static void cmd_connect (char **argv, int argc) {
  long long port, n, first, concurrency = 200;
  if (argc < 4 || !parse_int(argv[1], 1, 65535, &port) || !parse_int(argv[2], 0, 100000000, &n) ||
      !parse_int(argv[3], INT64_MIN / 2, INT64_MAX / 2, &first) ||
      (argc > 4 && !parse_int(argv[4], 1, 1000000, &concurrency))) {
    answer_error("usage: connect PORT N FIRST_SEQ [CONCURRENCY [SOURCE_ADDRESS...]]");
    return;
  }
  memset(&conn, 0, sizeof conn);
  for (int i = 5; i < argc; i++) {
    if (conn.source_count == MAX_SOURCES) {
      answer_error("too many source addresses");
      return;
    }
    if (inet_pton(AF_INET, argv[i], &conn.sources[conn.source_count]) != 1) {
      char message[128];
      snprintf(message, sizeof message, "not an IPv4 address: %.60s", argv[i]);
      answer_error(message);
      return;
    }
    conn.source_count++;
  }
  conn.active = true;
  conn.port = (int)port;
  conn.n = (long)n;
  conn.first_seq = first;
  conn.concurrency = (long)concurrency;
  conn.start = wall_ms();
  start_more();
  finish_connect_if_done();
}

static void cmd_expect (char **argv, int argc) {
  long long until, timeout;
  if (argc != 3 || !parse_int(argv[1], -1, INT64_MAX / 2, &until) || !parse_int(argv[2], 0, 1000000000, &timeout)) {
    answer_error("usage: expect UNTIL TIMEOUT_MS");
    return;
  }
  exp_cmd.active = true;
  exp_cmd.until = until;
  target = until;
  reached = 0;
  for (size_t i = 0; i < stream_count; i++) if (streams[i]->live && streams[i]->next > until) reached++;
  exp_cmd.deadline_ns = now_ns_mono() + (int64_t)timeout * 1000000;
  check_expect();
}

static void cmd_stall (char **argv, int argc) {
  long long port;
  if (argc != 2 || !parse_int(argv[1], 1, 65535, &port)) {
    answer_error("usage: stall PORT");
    return;
  }
  char message[200];
  int fd = open_socket((int)port, NULL, message, sizeof message);
  if (fd < 0) {
    answer_error(message);
    return;
  }
  stream *s = new_stream(fd, STALL_CONNECTING);
  stall_pending = true;
  if (!watch(s, EPOLLOUT)) {
    snprintf(message, sizeof message, "epoll_ctl: %s", strerror(errno));
    stream_failed(s, message);
  }
}

static void cmd_close_all (void) {
  size_t closed = stream_count;
  while (stream_count > 0) {
    stream *s = streams[stream_count - 1];
    s->live = false;
    free_stream(s);
  }
  live_count = 0;
  reset_window();
  char out[64];
  snprintf(out, sizeof out, "{\"closed\":%zu}", closed);
  answer(out);
}

static bool busy (void) {
  return conn.active || exp_cmd.active || stall_pending;
}

// Runs the commands waiting on stdin, one at a time, until one has to wait.
static void run_commands (void) {
  while (!busy()) {
    char *nl = input.len > 0 ? memchr(input.p, '\n', input.len) : NULL;
    if (nl == NULL) return;
    *nl = '\0';
    char *argv[4 + MAX_SOURCES + 2];
    int argc = 0;
    for (char *tok = strtok(input.p, " \t\r"); tok != NULL && argc < (int)(sizeof argv / sizeof *argv); tok = strtok(NULL, " \t\r")) {
      argv[argc++] = tok;
    }
    if (argc == 0) {
      // an empty line: nothing to answer
    } else if (strcmp(argv[0], "connect") == 0) {
      cmd_connect(argv, argc);
    } else if (strcmp(argv[0], "expect") == 0) {
      cmd_expect(argv, argc);
    } else if (strcmp(argv[0], "stall") == 0) {
      cmd_stall(argv, argc);
    } else if (strcmp(argv[0], "closeAll") == 0) {
      cmd_close_all();
    } else if (strcmp(argv[0], "stop") == 0) {
      answer("{}");
      exit(0);
    } else {
      char message[128];
      snprintf(message, sizeof message, "unknown command %.60s", argv[0]);
      answer_error(message);
    }
    size_t used = (size_t)(nl + 1 - input.p);
    memmove(input.p, nl + 1, input.len - used);
    input.len -= used;
  }
}

static void on_stdin (void) {
  reserve(&input, 65536);
  ssize_t r = read(0, input.p + input.len, input.cap - input.len - 1);
  if (r == 0) exit(0); // the parent is gone
  if (r < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    die("reading stdin");
  }
  input.len += (size_t)r;
}

// Raises the open file limit as far as it goes: the hard limit too when allowed.
static rlim_t raise_file_limit (void) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  rlim_t want = 1048576;
  FILE *f = fopen("/proc/sys/fs/nr_open", "r");
  if (f != NULL) {
    unsigned long long nr_open;
    if (fscanf(f, "%llu", &nr_open) == 1 && nr_open < want) want = (rlim_t)nr_open;
    fclose(f);
  }
  if (lim.rlim_max == RLIM_INFINITY || lim.rlim_max >= want) {
    struct rlimit raised = { want, lim.rlim_max };
    if (lim.rlim_cur < want && setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  } else {
    struct rlimit raised = { want, want };
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      lim = raised;
    } else {
      raised.rlim_cur = raised.rlim_max = lim.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
    }
  }
  return lim.rlim_cur;
}

int main (void) {
  signal(SIGPIPE, SIG_IGN);
  // Sleeps as long as asked, not up to 50 µs more (the default slack).
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  rlim_t max_files = raise_file_limit();
  read_buffer = malloc(READ_SIZE);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (read_buffer == NULL || epfd < 0) die("setup");
  struct epoll_event in = { .events = EPOLLIN, .data.ptr = NULL };
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in) != 0) die("watching stdin");
  reset_window();
  char ready[128];
  snprintf(ready, sizeof ready, "{\"ready\":true,\"pid\":%d,\"maxFiles\":%llu}", (int)getpid(), (unsigned long long)max_files);
  answer(ready);

  static struct epoll_event events[MAX_EVENTS];
  int last_ready = 0;
  for (;;) {
    run_commands();
    // Events trickle in one socket at a time: let some gather (not while connecting, which it would slow).
    if (last_ready > 0 && last_ready < COALESCE_BELOW && !conn.active) {
      struct timespec pause = { 0, COALESCE_NS };
      nanosleep(&pause, NULL);
    }
    int timeout = -1;
    if (exp_cmd.active) {
      int64_t left = exp_cmd.deadline_ns - now_ns_mono();
      timeout = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
    }
    int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    last_ready = n;
    for (int i = 0; i < n; i++) {
      stream *s = events[i].data.ptr;
      if (s == NULL) {
        on_stdin();
        continue;
      }
      if (s->state == CONNECTING || s->state == STALL_CONNECTING) on_connected(s);
      else on_readable(s);
    }
    check_expect();
  }
}
