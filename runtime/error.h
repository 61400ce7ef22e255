/*
 * Errors and fatal reports. Runtime errors travel as negative errno values
 * (converted once, at the system call). A broken invariant is not an error:
 * weft__panic prints "weft: ..." and aborts, as Go's throw does.
 */
#ifndef WEFT_ERROR_H
#define WEFT_ERROR_H

/* Prints "weft: <message>" and a newline on stderr, then aborts. Any thread. */
_Noreturn void weft__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "weft: <message>" and a newline on stderr as one write. Any thread. */
void weft__say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
