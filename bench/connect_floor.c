/* The floor of a TCP probe: what one connect, closed at once with a reset, costs the
 * connecting process on this machine, with nothing else around it.
 *
 *   connect_floor N SECONDS PORT [RATE]
 *
 * Connects to target I (0 <= I < N) at 127.2.<I/250>.<I%250+1>:PORT (the addresses of
 * bench/probe_scale.py's stand-in), round-robin, RATE connects a second (default N: every
 * target once a second), started in 1 ms ticks: a non-blocking socket, connect, the socket
 * added to one epoll set, then on writability SO_ERROR read, SO_LINGER {1, 0} set and the
 * socket closed (a reset, as gslb's tcp probe does). This is every system call a prober
 * cannot avoid; gslb (tokio) does the same ones plus the epoll deregistration.
 *
 * Prints the connects completed (ok, failed), the wall time, and the process's user and
 * system CPU (getrusage) per connect in microseconds, on one line:
 *   floor: n=N rate=R seconds=S ok=O failed=F user_us_per_connect=U sys_us_per_connect=Y
 * Exits 1 on a usage or setup error. Single-threaded; loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double tv_us(struct timeval tv) { return tv.tv_sec * 1e6 + tv.tv_usec; }

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: connect_floor N SECONDS PORT [RATE]\n");
    return 1;
  }
  long n = atol(argv[1]);
  double seconds = atof(argv[2]);
  int port = atoi(argv[3]);
  long rate = argc > 4 ? atol(argv[4]) : n;
  if (n < 1 || n > 64000 || seconds <= 0 || port < 1 || port > 65535 || rate < 1) {
    fprintf(stderr, "connect_floor: N is 1 to 64000, SECONDS > 0, PORT 1 to 65535, RATE >= 1\n");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("epoll_create1");
    return 1;
  }
  struct epoll_event events[256];
  struct linger rst = {1, 0};
  long next_target = 0, started = 0, ok = 0, failed = 0, in_flight = 0;
  int first_error = 0;
  double t0 = now(), end = t0 + seconds;
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  for (;;) {
    double t = now();
    /* Start every connect due by now (RATE a second since t0), unless past the end. */
    long due = t < end ? (long)((t - t0) * rate) : started;
    while (started < due) {
      long i = next_target;
      next_target = (next_target + 1) % n;
      started++;
      struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
      char ip[32];
      snprintf(ip, sizeof ip, "127.2.%ld.%ld", i / 250, i % 250 + 1);
      inet_pton(AF_INET, ip, &sa.sin_addr);
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        failed++;
        if (first_error == 0) first_error = errno;
        continue;
      }
      if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        failed++;
        if (first_error == 0) first_error = errno;
        close(fd);
        continue;
      }
      struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        failed++;
        close(fd);
        continue;
      }
      in_flight++;
    }
    if (t >= end && in_flight == 0) break;
    if (t >= end + 2) break; /* connects still pending 2 s after the end: give up */
    int k = epoll_wait(ep, events, 256, 1);
    for (int j = 0; j < k; j++) {
      int fd = events[j].data.fd, err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) {
        ok++;
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
      } else {
        failed++;
        if (first_error == 0) first_error = err;
      }
      close(fd);
      in_flight--;
    }
  }
  getrusage(RUSAGE_SELF, &r1);
  double wall = now() - t0, done = ok + failed > 0 ? ok + failed : 1;
  if (first_error != 0) fprintf(stderr, "connect_floor: first failure: %s\n", strerror(first_error));
  printf("floor: n=%ld rate=%ld seconds=%.3f ok=%ld failed=%ld user_us_per_connect=%.2f "
         "sys_us_per_connect=%.2f\n",
         n, rate, wall, ok, failed, (tv_us(r1.ru_utime) - tv_us(r0.ru_utime)) / done,
         (tv_us(r1.ru_stime) - tv_us(r0.ru_stime)) / done);
  return 0;
}
