/*
 * acl-probe DIR: on a file system with POSIX ACLs (virtio-fs --posix-acl), as root: creates
 * DIR/acl.txt (mode 0644), sets system.posix_acl_access with a named-user entry that gives uid
 * 65534 no rights, reads it back, then checks open(O_RDONLY) as uid 65534 (refused: EACCES by
 * the ACL) and as uid 65533 (allowed by the "other" entry), each in a child that drops to that
 * uid, and the mode the ACL left (the group bits follow the mask entry). One line per result.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Linux's posix_acl_xattr format: le32 version 2, then { le16 tag, le16 perm, le32 id } entries. */
static size_t put(uint8_t *b, size_t at, uint16_t tag, uint16_t perm, uint32_t id) {
  b[at] = tag & 0xff; b[at + 1] = tag >> 8;
  b[at + 2] = perm & 0xff; b[at + 3] = perm >> 8;
  for (int i = 0; i < 4; i++) b[at + 4 + i] = (id >> (8 * i)) & 0xff;
  return at + 8;
}

static const char *open_as(const char *path, uid_t uid) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(uid) != 0 || setuid(uid) != 0) _exit(3);
    int fd = open(path, O_RDONLY);
    _exit(fd >= 0 ? 0 : errno == EACCES ? 1 : 2);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 9;
  return code == 0 ? "allowed" : code == 1 ? "EACCES" : "other-error";
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  char path[4096];
  snprintf(path, sizeof path, "%s/acl.txt", argv[1]);
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) { printf("create: %s\n", strerror(errno)); return 1; }
  fchmod(fd, 0644);
  close(fd);
  printf("before 65534: %s\n", open_as(path, 65534));
  uint8_t v[4 + 5 * 8] = { 2, 0, 0, 0 };
  size_t n = 4;
  n = put(v, n, 0x01, 6, 0xffffffff); /* USER_OBJ rw- */
  n = put(v, n, 0x02, 0, 65534);      /* USER 65534 --- */
  n = put(v, n, 0x04, 4, 0xffffffff); /* GROUP_OBJ r-- */
  n = put(v, n, 0x10, 4, 0xffffffff); /* MASK r-- */
  n = put(v, n, 0x20, 4, 0xffffffff); /* OTHER r-- */
  if (setxattr(path, "system.posix_acl_access", v, n, 0) != 0) { printf("setxattr: %s\n", strerror(errno)); return 1; }
  uint8_t back[256];
  ssize_t got = getxattr(path, "system.posix_acl_access", back, sizeof back);
  printf("getxattr: %zd bytes, %s\n", got, got == (ssize_t)n && memcmp(back, v, n) == 0 ? "same" : "different");
  printf("after 65534: %s\n", open_as(path, 65534));
  printf("after 65533: %s\n", open_as(path, 65533));
  struct stat st;
  stat(path, &st);
  printf("mode: %o\n", st.st_mode & 07777);
  return 0;
}
