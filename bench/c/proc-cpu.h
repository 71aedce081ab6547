/*
 * CPU seconds for the load generators: this process's, and a process tree's from /proc (utime +
 * stime of a process and its descendants, as bench/proc-cpu.mjs reads them for the JS benches).
 * Meant for the edges of a timed part, never for the hot path.
 */
#ifndef PROC_CPU_H
#define PROC_CPU_H

/** This process's CPU seconds (CLOCK_PROCESS_CPUTIME_ID). */
double self_cpu_s(void);
/** utime + stime of `pid` and its descendants (each thread group's totals from /proc/PID/stat), in
 * seconds; 0 for pid <= 0. */
double tree_cpu_s(long pid);

#endif
