/* i2vgen: the command-line tool over the engine (tokenize, encode, generate, mkmodel, bench,
 * compare, plan), the HTTP service (serve) and its cluster's GPU nodes (worker). */
#include <stdio.h>
#include <cblas.h>
#include <string.h>

#include "commands.h"

/* subcommand entry points */
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);

static const I2vCommand commands[] = {
    /* subcommand table */
    {"tokenize", "print the token ids of prompts", cmd_tokenize},
    {"generate", "generate a clip from an image and a prompt (PNG frames, tensor dumps)",
     cmd_generate},
    {"encode", "conditioning tensors of a prompt and an image; VAE decode of latents", cmd_encode},
    {"mkmodel", "write a diffusers-format model directory with synthetic weights", cmd_mkmodel},
    {"bench", "time a generation stage by stage (JSON line on stdout)", cmd_bench},
    {"compare", "relative L2 / max abs error of the tensors two files share", cmd_compare},
    {"plan", "a job's CUDA device memory per stage, before running it (no GPU needed)", cmd_plan},
    {"serve", "serve the HTTP video-generation API (OpenAI Videos shape, durable job queue)",
     cmd_serve},
    {"worker", "run the videos of `serve --queue` API nodes (a GPU node of a Redis cluster)",
     cmd_worker},
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
  fprintf(out, "usage: i2vgen COMMAND [OPTIONS...]\n\ncommands:\n");
  for (const I2vCommand *c = commands; c->name != NULL; c++)
    fprintf(out, "  %-10s %s\n", c->name, c->summary);
  fprintf(out, "\n'i2vgen COMMAND --help' shows the options of a command.\n");
}

int main(int argc, char **argv) {
  /* This process owns its threads: the CPU backend splits each GEMM over its OpenMP threads,
   * which wants OpenBLAS single-threaded (engine/cpu/cpu_ops.h); a library never sets this for
   * its host, a program may. */
  openblas_set_num_threads(1);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (const I2vCommand *c = commands; c->name != NULL; c++)
    if (strcmp(argv[1], c->name) == 0) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "i2vgen: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
