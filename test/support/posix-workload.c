/*
 * The POSIX workload of the virtio-fs guest test: run in a directory on the host and on the
 * guest's virtiofs mount, it prints one line per step; the two outputs must be identical.
 * Only results that do not depend on where it runs are printed (no inode numbers, no times
 * of "now"): equalities, sizes, modes, errnos.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define N_ENTRIES 10000
static int step_failed = 0;
#define SAY(...) (printf(__VA_ARGS__), putchar('\n'), fflush(stdout))
#define TRY(name, expr) do { if ((expr) < 0) { SAY("%s errno %d", name, errno); step_failed = 1; } } while (0)

static void writefile(const char *p, const char *s) {
  int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) SAY("write %s errno %d", p, errno);
  if (fd >= 0) close(fd);
}

static void readfile(const char *label, const char *p) {
  char buf[256] = {0};
  int fd = open(p, O_RDONLY);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
  SAY("%s %zd '%s'", label, n, n > 0 ? buf : "");
  if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
  if (argc != 2 || chdir(argv[1]) != 0) return 2;
  struct stat a, b;
  char buf[4096];

  /* create, write, read back */
  writefile("f1", "first file");
  readfile("read", "f1");

  /* rename over an existing file */
  writefile("f2", "second");
  TRY("rename", rename("f2", "f1"));
  readfile("renamed", "f1");
  SAY("old-name-gone %d", access("f2", F_OK) == -1 && errno == ENOENT);

  /* hard link */
  TRY("link", link("f1", "hard"));
  stat("f1", &a);
  stat("hard", &b);
  SAY("link same-inode %d nlink %lu", a.st_ino == b.st_ino, (unsigned long)a.st_nlink);
  SAY("link-to-dir errno %d", link(".", "dirlink") == 0 ? 0 : errno);

  /* symbolic link */
  TRY("symlink", symlink("f1", "soft"));
  ssize_t n = readlink("soft", buf, sizeof buf - 1);
  buf[n < 0 ? 0 : n] = 0;
  SAY("readlink '%s'", buf);
  lstat("soft", &a);
  SAY("lstat symlink %d size %lld", S_ISLNK(a.st_mode), (long long)a.st_size);
  readfile("through-symlink", "soft");

  /* chmod, chown, utimensat */
  TRY("chmod", chmod("f1", 0604));
  TRY("chown", chown("f1", 1234, 5678));
  struct timespec ts[2] = {{1500000000, 111111111}, {1600000000, 222222222}};
  TRY("utimensat", utimensat(AT_FDCWD, "f1", ts, 0));
  stat("f1", &a);
  SAY("attrs mode %o uid %u gid %u atime %lld.%09ld mtime %lld.%09ld", a.st_mode & 07777, a.st_uid, a.st_gid, (long long)a.st_atim.tv_sec, a.st_atim.tv_nsec,
      (long long)a.st_mtim.tv_sec, a.st_mtim.tv_nsec);
  TRY("truncate", truncate("f1", 3));
  stat("f1", &a);
  SAY("truncated size %lld", (long long)a.st_size);

  /* xattrs */
  TRY("setxattr", setxattr("f1", "user.color", "blue", 4, 0));
  n = getxattr("f1", "user.color", buf, sizeof buf);
  SAY("getxattr %zd '%.*s'", n, (int)(n > 0 ? n : 0), buf);
  n = listxattr("f1", buf, sizeof buf);
  SAY("listxattr has-color %d", n > 0 && memmem(buf, n, "user.color", 11) != NULL);
  SAY("getxattr-missing errno %d", getxattr("f1", "user.none", buf, sizeof buf) < 0 ? errno : 0);
  SAY("xattr-create-existing errno %d", setxattr("f1", "user.color", "red", 3, XATTR_CREATE) < 0 ? errno : 0);
  TRY("removexattr", removexattr("f1", "user.color"));
  SAY("after-remove errno %d", getxattr("f1", "user.color", buf, sizeof buf) < 0 ? errno : 0);

  /* POSIX locks between two processes */
  int fd = open("lockfile", O_CREAT | O_RDWR, 0644);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100};
  TRY("setlk", fcntl(fd, F_SETLK, &fl));
  int pipefd[2], gofd[2]; /* child -> parent: its findings; parent -> child: "unlocked" */
  if (pipe(pipefd) != 0 || pipe(gofd) != 0) return 3;
  pid_t pid = fork();
  if (pid == 0) {
    int cfd = open("lockfile", O_RDWR);
    struct flock c = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10};
    int r1 = fcntl(cfd, F_SETLK, &c) == 0 ? 0 : errno;
    struct flock g = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    fcntl(cfd, F_GETLK, &g);
    char msg[64];
    int len = snprintf(msg, sizeof msg, "%d %d %lld %lld", r1, g.l_type == F_WRLCK, (long long)g.l_start, (long long)g.l_len);
    if (write(pipefd[1], msg, len) != len) _exit(1);
    char go;
    if (read(gofd[0], &go, 1) != 1) _exit(1); /* the parent wrote after unlocking */
    struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10};
    _exit(fcntl(cfd, F_SETLKW, &w) == 0 ? 0 : 1);
  }
  char msg[64] = {0};
  if (read(pipefd[0], msg, sizeof msg - 1) <= 0) return 4;
  SAY("lock child setlk-errno/getlk-wrlck/start/len %s", msg);
  fl.l_type = F_UNLCK;
  TRY("unlock", fcntl(fd, F_SETLK, &fl));
  if (write(gofd[1], "g", 1) != 1) return 5;
  int status = 0;
  waitpid(pid, &status, 0);
  SAY("lock child setlkw-after-unlock %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  close(fd);

  /* readdir of many entries */
  TRY("mkdir", mkdir("many", 0755));
  for (int i = 0; i < N_ENTRIES; i++) {
    char p[64];
    snprintf(p, sizeof p, "many/entry-%05d", i);
    int f = open(p, O_CREAT | O_WRONLY, 0644);
    if (f < 0) {
      SAY("create %s errno %d", p, errno);
      break;
    }
    close(f);
  }
  DIR *d = opendir("many");
  long count = 0, sum = 0;
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    count++;
    if (strncmp(e->d_name, "entry-", 6) == 0) sum += atol(e->d_name + 6);
  }
  if (d != NULL) closedir(d);
  SAY("readdir count %ld sum %ld", count, sum);

  /* sparse file, SEEK_DATA / SEEK_HOLE */
  fd = open("sparse", O_CREAT | O_RDWR | O_TRUNC, 0644);
  memset(buf, 'x', 4096);
  if (pwrite(fd, buf, 4096, 1 << 20) != 4096) SAY("pwrite errno %d", errno);
  SAY("seek data %lld hole %lld", (long long)lseek(fd, 0, SEEK_DATA), (long long)lseek(fd, 1 << 20, SEEK_HOLE));
  fstat(fd, &a);
  SAY("sparse size %lld", (long long)a.st_size);
  TRY("fsync", fsync(fd));
  TRY("fdatasync", fdatasync(fd));
  close(fd);

  /* unlink of an open file */
  fd = open("open-unlinked", O_CREAT | O_RDWR | O_TRUNC, 0644);
  TRY("unlink-open", unlink("open-unlinked"));
  if (write(fd, "still here", 10) != 10) SAY("write-after-unlink errno %d", errno);
  memset(buf, 0, 32);
  n = pread(fd, buf, 32, 0);
  fstat(fd, &a);
  SAY("unlinked-open read %zd '%s' nlink %lu gone %d", n, buf, (unsigned long)a.st_nlink, access("open-unlinked", F_OK) == -1);
  close(fd);

  /* directory removal: not empty, then empty */
  SAY("rmdir-nonempty errno %d", rmdir("many") == 0 ? 0 : errno);
  SAY("exclusive-create errno %d", open("f1", O_CREAT | O_EXCL | O_WRONLY, 0644) >= 0 ? 0 : errno);
  SAY("done %d", step_failed);
  return 0;
}
