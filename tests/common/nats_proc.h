/* nats_proc.h - test helpers: a nats-server with JetStream (its store in a directory of the test)
 * on 127.0.0.1 and a free port, started as a child that dies with the test process. */
#ifndef KF_TEST_NATS_PROC_H
#define KF_TEST_NATS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* nats-server on PATH or in /usr/sbin, /usr/local/sbin, /usr/bin; false when absent. */
bool kft_nats_find(void);
/* A free TCP port on 127.0.0.1 (bound, read, closed). */
int kft_free_port(void);
/* Starts nats-server -js with its store in dir/js and its log in dir/nats-server.log on port,
 * waits (15 s at most) until the port accepts; asserts (cmocka) that it does. Returns its pid. */
pid_t kft_nats_start(int port, const char *dir);
/* SIGKILL and reap *pid (when > 0), then *pid = -1. */
void kft_nats_kill(pid_t *pid);

#endif
