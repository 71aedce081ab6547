/*
 * AF_ALG skcipher client for the virtio-crypto guest test: encrypts (or decrypts) a file with
 * an algorithm named by its driver name (so the guest's virtio_crypto driver does the work, not
 * the generic C code) and writes the result.
 *   af-alg-cipher DRIVER enc|dec KEYHEX IVHEX IN OUT
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_alg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SOL_ALG
#define SOL_ALG 279
#endif

static int unhex(const char *s, unsigned char *out, int max) {
  int n = (int)strlen(s) / 2;
  if (n > max) return -1;
  for (int i = 0; i < n; i++) {
    unsigned int v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (unsigned char)v;
  }
  return n;
}

static int die(const char *what) {
  fprintf(stderr, "af-alg-cipher: %s: %s\n", what, strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: af-alg-cipher DRIVER enc|dec KEYHEX IVHEX IN OUT\n");
    return 2;
  }
  unsigned char key[64], iv[16];
  int keylen = unhex(argv[3], key, sizeof key);
  int ivlen = unhex(argv[4], iv, sizeof iv);
  if (keylen <= 0 || ivlen != 16) return 2;
  int in = open(argv[5], O_RDONLY);
  if (in < 0) return die("open in");
  struct stat st;
  if (fstat(in, &st) < 0) return die("stat");
  size_t len = (size_t)st.st_size;
  unsigned char *buf = malloc(len), *out = malloc(len);
  if (!buf || !out || read(in, buf, len) != (ssize_t)len) return die("read in");
  close(in);

  int tfm = socket(AF_ALG, SOCK_SEQPACKET, 0);
  if (tfm < 0) return die("socket");
  struct sockaddr_alg sa = {.salg_family = AF_ALG};
  strcpy((char *)sa.salg_type, "skcipher");
  strncpy((char *)sa.salg_name, argv[1], sizeof sa.salg_name - 1);
  if (bind(tfm, (struct sockaddr *)&sa, sizeof sa) < 0) return die("bind");
  if (setsockopt(tfm, SOL_ALG, ALG_SET_KEY, key, keylen) < 0) return die("setkey");
  int op = accept(tfm, NULL, 0);
  if (op < 0) return die("accept");

  char cbuf[CMSG_SPACE(sizeof(__u32)) + CMSG_SPACE(sizeof(struct af_alg_iv) + 16)];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr msg = {.msg_control = cbuf, .msg_controllen = sizeof cbuf, .msg_iov = &iov, .msg_iovlen = 1};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_ALG;
  c->cmsg_type = ALG_SET_OP;
  c->cmsg_len = CMSG_LEN(sizeof(__u32));
  *(__u32 *)CMSG_DATA(c) = strcmp(argv[2], "dec") == 0 ? ALG_OP_DECRYPT : ALG_OP_ENCRYPT;
  c = CMSG_NXTHDR(&msg, c);
  c->cmsg_level = SOL_ALG;
  c->cmsg_type = ALG_SET_IV;
  c->cmsg_len = CMSG_LEN(sizeof(struct af_alg_iv) + 16);
  struct af_alg_iv *aiv = (struct af_alg_iv *)CMSG_DATA(c);
  aiv->ivlen = 16;
  memcpy(aiv->iv, iv, 16);
  if (sendmsg(op, &msg, 0) != (ssize_t)len) return die("sendmsg");
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(op, out + got, len - got);
    if (r <= 0) return die("read result");
    got += (size_t)r;
  }
  int fd = open(argv[6], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, out, len) != (ssize_t)len) return die("write out");
  close(fd);
  return 0;
}
