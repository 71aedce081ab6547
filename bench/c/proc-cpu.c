/*
 * CPU seconds from the clock and from /proc (see proc-cpu.h).
 */
#include "proc-cpu.h"
#include "vhost-front.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

double self_cpu_s(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) DIE_ERRNO("clock_gettime CPU");
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define MAX_PROCS 32768
static int proc_pid[MAX_PROCS], proc_ppid[MAX_PROCS];
static uint64_t proc_ticks[MAX_PROCS];
static unsigned char proc_in[MAX_PROCS];

double tree_cpu_s(long pid) {
  if (pid <= 0) return 0;
  DIR *d = opendir("/proc");
  if (d == NULL) DIE_ERRNO("opendir /proc");
  int n = 0;
  struct dirent *e;
  char path[300], buf[1024];
  while ((e = readdir(d)) != NULL && n < MAX_PROCS) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue; /* gone meanwhile */
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) continue;
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) continue;
    /* After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    unsigned long long ppid, ut, st;
    if (sscanf(p + 2, "%*c %llu %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ppid, &ut, &st) != 3) continue;
    proc_pid[n] = atoi(e->d_name);
    proc_ppid[n] = (int)ppid;
    proc_ticks[n] = ut + st;
    proc_in[n] = proc_pid[n] == pid;
    n++;
  }
  closedir(d);
  /* Mark descendants until nothing changes (the tree is shallow). */
  for (int changed = 1; changed;) {
    changed = 0;
    for (int i = 0; i < n; i++) {
      if (proc_in[i]) continue;
      for (int k = 0; k < n; k++) {
        if (proc_in[k] && proc_pid[k] == proc_ppid[i]) {
          proc_in[i] = 1;
          changed = 1;
          break;
        }
      }
    }
  }
  uint64_t ticks = 0;
  for (int i = 0; i < n; i++) if (proc_in[i]) ticks += proc_ticks[i];
  return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}
