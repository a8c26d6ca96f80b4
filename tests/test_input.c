/* Reading untrusted input (engine/core): the bounded JSON loader (json_load.h), regular-file-only
 * opening (input_file.h) and shortened strings in messages (echo.h). Every case is a file or text
 * an attacker or a careless user could hand the engine. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <i2v/error.h>
#include "echo.h"
#include "golden.h"
#include "input_file.h"
#include "json_load.h"

/* ---- helpers ---- */

/* Parses text (len bytes) and asserts it fails with I2V_ERROR_FORMAT naming every needle. */
static void expect_parse_error(const char *text, gsize len, const char *const *needles) {
  GError *err = NULL;
  JsonObject *obj = i2v_json_parse_object(text, len, "test.json", &err);
  g_assert_null(obj);
  const char *with_label[8] = {"test.json"};
  for (int i = 0; needles[i] != NULL && i < 6; i++) with_label[i + 1] = needles[i];
  golden_assert_error(&err, I2V_ERROR_FORMAT, with_label);
}

/* Parses text and asserts it gives an object. */
static void expect_parse_ok(const char *text) {
  GError *err = NULL;
  JsonObject *obj = i2v_json_parse_object(text, strlen(text), "test.json", &err);
  g_assert_no_error(err);
  g_assert_nonnull(obj);
  json_object_unref(obj);
}

/* n opening brackets of kind open, a value, n closing ones, inside {"a": ...}. */
static char *nested(const char *open, const char *close, int n) {
  GString *s = g_string_new("{\"a\": ");
  for (int i = 0; i < n; i++) g_string_append(s, open);
  g_string_append(s, "1");
  for (int i = 0; i < n; i++) g_string_append(s, close);
  g_string_append(s, "}");
  return g_string_free(s, FALSE);
}

/* ---- JSON ---- */

/* 200000 nested arrays overflowed json-glib's stack (SIGSEGV); objects the same. The limit is
 * exact: I2V_JSON_MAX_DEPTH levels parse (the outer object counts), one more does not. */
static void test_json_deep(void) {
  char *arrays = nested("[", "]", 200000);
  expect_parse_error(arrays, strlen(arrays), (const char *[]){"nested deeper than 64", NULL});
  char *objects = nested("{\"b\": ", "}", 5000);
  expect_parse_error(objects, strlen(objects), (const char *[]){"nested deeper than 64", NULL});
  char *at_limit = nested("[", "]", I2V_JSON_MAX_DEPTH - 1);
  expect_parse_ok(at_limit);
  char *over = nested("[", "]", I2V_JSON_MAX_DEPTH);
  expect_parse_error(over, strlen(over), (const char *[]){"nested deeper", NULL});
  g_free(over);
  g_free(at_limit);
  g_free(objects);
  g_free(arrays);
}

/* Brackets inside strings do not count, escaped quotes do not end a string; a single-quoted
 * string or a comment (json-glib takes both, and they would hide brackets from the count) is
 * refused. */
static void test_json_strings(void) {
  GString *s = g_string_new("{\"a\": \"\\\"");
  for (int i = 0; i < 1000; i++) g_string_append(s, "[{");
  g_string_append(s, "\", \"b\": \"\\\\\"}");
  expect_parse_ok(s->str);
  g_string_free(s, TRUE);
  const char *single = "{\"a\": '\"[[[['}";
  expect_parse_error(single, strlen(single), (const char *[]){"single-quoted", NULL});
  const char *comment = "{\"a\": /* \" */ 1}";
  expect_parse_error(comment, strlen(comment), (const char *[]){"comment", NULL});
}

/* Empty or blank text, a root that is not an object, a key twice (also nested), and syntax
 * errors, which give the position but never quote the text. */
static void test_json_errors(void) {
  expect_parse_error("", 0, (const char *[]){"empty", NULL});
  expect_parse_error(" \n\t ", 4, (const char *[]){"empty", NULL});
  expect_parse_error("[1, 2]", 6, (const char *[]){"expected a JSON object", "an array", NULL});
  expect_parse_error("\"x\"", 3, (const char *[]){"expected a JSON object", "a string", NULL});
  const char *dup = "{\"w\": 1, \"v\": 2, \"w\": 3}";
  expect_parse_error(dup, strlen(dup), (const char *[]){"'w' appears twice", NULL});
  const char *inner = "{\"t\": {\"dtype\": \"F32\", \"dtype\": \"F16\"}}";
  expect_parse_error(inner, strlen(inner), (const char *[]){"'dtype' appears twice", NULL});
  const char *secret = "{\"a\": \"root:x:0:0\" 5}";
  GError *err = NULL;
  g_assert_null(i2v_json_parse_object(secret, strlen(secret), "passwd", &err));
  g_assert_nonnull(err);
  g_test_message("%s", err->message);
  g_assert_null(strstr(err->message, "root"));
  g_assert_nonnull(strstr(err->message, "line 1, column"));
  g_clear_error(&err);
  const char *nul = "{\"a\": 1}\0{";
  expect_parse_error(nul, 10, (const char *[]){"invalid JSON", NULL});
}

/* Files: an empty one, a FIFO (must not block), a directory, a missing one. */
static void test_json_files(void) {
  char *dir = golden_tmp_dir("i2v-input");
  char *empty = g_build_filename(dir, "config.json", NULL);
  g_assert_true(g_file_set_contents(empty, "", 0, NULL));
  GError *err = NULL;
  g_assert_null(i2v_json_load_object(empty, &err));
  golden_assert_error(&err, I2V_ERROR_FORMAT, (const char *[]){empty, "empty", NULL});
  char *fifo = g_build_filename(dir, "vocab.json", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  g_assert_null(i2v_json_load_object(fifo, &err));
  golden_assert_error(&err, I2V_ERROR_IO, (const char *[]){fifo, "is a FIFO", NULL});
  g_assert_null(i2v_json_load_object(dir, &err));
  golden_assert_error(&err, I2V_ERROR_IO, (const char *[]){dir, "is a directory", NULL});
  char *missing = g_build_filename(dir, "missing.json", NULL);
  g_assert_null(i2v_json_load_object(missing, &err));
  golden_assert_error(&err, I2V_ERROR_MISSING, (const char *[]){missing, "not found", NULL});
  g_free(missing);
  g_free(fifo);
  g_free(empty);
  golden_tree_remove(dir);
  g_free(dir);
}

/* ---- regular files only ---- */

/* Asserts i2v_input_open(path) fails with code, naming path and what. */
static void expect_open_error(const char *path, int code, const char *what) {
  GError *err = NULL;
  g_assert_cmpint(i2v_input_open(path, &err), ==, -1);
  golden_assert_error(&err, code, (const char *[]){path, what, NULL});
}

/* Each kind of non-regular file is refused naming what it is, without blocking; a dangling
 * symlink is a missing file, a symlink loop is named as one (not "not found"). */
static void test_file_kinds(void) {
  char *dir = golden_tmp_dir("i2v-input");
  expect_open_error(dir, I2V_ERROR_IO, "is a directory");
  char *fifo = g_build_filename(dir, "fifo", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  expect_open_error(fifo, I2V_ERROR_IO, "is a FIFO");
  GError *err = NULL;
  g_assert_null(i2v_input_map(fifo, &err));
  golden_assert_error(&err, I2V_ERROR_IO, (const char *[]){fifo, "is a FIFO", NULL});
  char *sock_path = g_build_filename(dir, "sock", NULL);
  int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  g_strlcpy(addr.sun_path, sock_path, sizeof addr.sun_path);
  g_assert_cmpint(bind(sock, (struct sockaddr *)&addr, sizeof addr), ==, 0);
  expect_open_error(sock_path, I2V_ERROR_IO, "is a socket");
  close(sock);
  expect_open_error("/dev/null", I2V_ERROR_IO, "is a character device");
  char *dangling = g_build_filename(dir, "dangling", NULL);
  g_assert_cmpint(symlink("nowhere", dangling), ==, 0);
  expect_open_error(dangling, I2V_ERROR_MISSING, "not found");
  char *loop_a = g_build_filename(dir, "loop-a", NULL),
       *loop_b = g_build_filename(dir, "loop-b", NULL);
  g_assert_cmpint(symlink(loop_b, loop_a), ==, 0);
  g_assert_cmpint(symlink(loop_a, loop_b), ==, 0);
  expect_open_error(loop_a, I2V_ERROR_IO, "symlink loop");
  g_assert_false(i2v_input_check(loop_b, &err));
  golden_assert_error(&err, I2V_ERROR_IO, (const char *[]){loop_b, "symlink loop", NULL});
  g_free(loop_b);
  g_free(loop_a);
  g_free(dangling);
  g_free(sock_path);
  g_free(fifo);
  golden_tree_remove(dir);
  g_free(dir);
}

/* A regular file opens in blocking mode (through a symlink too), maps and reads; reading refuses
 * a file over the size given. */
static void test_file_regular(void) {
  char *dir = golden_tmp_dir("i2v-input");
  char *path = g_build_filename(dir, "data.bin", NULL);
  g_assert_true(g_file_set_contents(path, "0123456789", 10, NULL));
  char *link = g_build_filename(dir, "link.bin", NULL);
  g_assert_cmpint(symlink(path, link), ==, 0);
  GError *err = NULL;
  int fd = i2v_input_open(link, &err);
  g_assert_no_error(err);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(fcntl(fd, F_GETFL) & O_NONBLOCK, ==, 0);
  close(fd);
  GMappedFile *map = i2v_input_map(path, &err);
  g_assert_no_error(err);
  g_assert_cmpmem(g_mapped_file_get_contents(map), g_mapped_file_get_length(map), "0123456789", 10);
  g_mapped_file_unref(map);
  GBytes *bytes = i2v_input_read(path, 10, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(g_bytes_get_size(bytes), ==, 10);
  g_bytes_unref(bytes);
  g_assert_null(i2v_input_read(path, 9, &err));
  golden_assert_error(&err, I2V_ERROR_FORMAT, (const char *[]){path, "10 bytes", "9 bytes", NULL});
  g_free(link);
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* ---- shortened strings ---- */

/* Short strings are repeated as they are; a 100 MB one is cut at a character boundary (here in
 * the middle of 3-byte characters) and says its length. */
static void test_echo(void) {
  I2vEcho buf;
  const char *s = "out/frame-%03d.png";
  g_assert_true(i2v_echo(s, &buf) == s);
  gsize n = 100 << 20;
  char *big = g_malloc(n + 1);
  for (gsize i = 0; i + 3 <= n; i += 3) memcpy(big + i, "\xe2\x82\xac", 3); /* € */
  memset(big + n - n % 3, 'x', n % 3);
  big[n] = '\0';
  const char *shown = i2v_echo(big, &buf);
  g_assert_cmpuint(strlen(shown), <=, I2V_ECHO_MAX + 40);
  g_assert_true(g_utf8_validate(shown, -1, NULL));
  g_assert_true(g_str_has_suffix(shown, "… (104857600 bytes)"));
  g_assert_true(g_str_has_prefix(shown, "€€€"));
  g_free(big);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/input/json/deep", test_json_deep);
  g_test_add_func("/input/json/strings", test_json_strings);
  g_test_add_func("/input/json/errors", test_json_errors);
  g_test_add_func("/input/json/files", test_json_files);
  g_test_add_func("/input/file/kinds", test_file_kinds);
  g_test_add_func("/input/file/regular", test_file_regular);
  g_test_add_func("/input/echo", test_echo);
  return g_test_run();
}
