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

/* The calling thread's errno, read afresh. glibc declares the function
 * behind errno const, so a compiler may take errno's address once in a
 * function and use it again after a call that suspended the task, which
 * may then run on another thread: in a function that may have suspended
 * (a loop around a wait), read errno through this. Any thread. */
int weft__errno(void);

#endif
