/*
 * A persistent ggml threadpool for every llama.cpp context node-llama-cpp creates in
 * `autotune serve` (issue 14: the embedded provider's decode at 2 threads).
 *
 * node-llama-cpp 3.22.1's addon never calls `llama_attach_threadpool`, and its
 * prebuilt CPU backends are built without OpenMP, so at 2 or more threads every graph
 * compute (one per decoded token) creates its helper threads and joins them again
 * (ggml-cpu.c `ggml_graph_compute`: "disposable_threadpool"); llama-bench attaches
 * one pool per context and the shared llama-server's OpenMP keeps its threads. On 2
 * cores that cost the 15M model a quarter of its decode at 2 threads (2026-12-07:
 * node-llama-cpp's own loop 688 -> 938 tok/s median of 5 interleaved pairs, the
 * served path 526/582 -> 686/763; the 42M served at 2 threads 214/239 -> 291/324,
 * which then beats 1 thread as llama-bench says it should).
 *
 * How: loaded by src/serve/ThreadpoolShim.ts (from LlamaBoot, before `getLlama`) with
 * RTLD_GLOBAL before node-llama-cpp loads its addon, this library's `llama_decode` comes
 * first in the addon's symbol lookup. It gives a context that has no pool of its size one (through
 * llama.cpp's own API: `ggml_threadpool_params_init`, the CPU backend's
 * `ggml_threadpool_new` as llama-bench finds it, `llama_attach_threadpool`), then
 * calls llama.cpp's `llama_decode` unchanged. `llama_free` frees the context, then its
 * pools. Nothing else is touched: what a context computes is what it computed without
 * the pool (the tests compare replies at temperature 0). The pool is llama.cpp's default
 * (`poll` 50, as llama-bench and llama-server run theirs): after a graph its helper threads
 * spin for a while (~0.1-0.5 s of a core) before they sleep, so an idle server sleeps.
 *
 * Written for llama.cpp de3ff81, the release node-llama-cpp 3.22.1 ships (v0.5.0):
 * only `struct llama_batch`, passed by value, is declared here (bin/native.js builds
 * this file only against that node-llama-cpp version). Linux with glibc only
 * (dl_iterate_phdr, RTLD_NOLOAD).
 *
 * `napi_register_module_v1` makes it a Node-API module to `process.dlopen`, which
 * otherwise unloads a library that registers no module.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.h (llama.cpp de3ff81), passed by value to llama_decode. */
struct llama_batch {
  int32_t n_tokens;
  int32_t *token;
  float *embd;
  int32_t *pos;
  int32_t *n_seq_id;
  int32_t **seq_id;
  int8_t *logits;
};

typedef int32_t (*decode_fn)(void *ctx, struct llama_batch batch);
typedef void (*free_fn)(void *ctx);
typedef int32_t (*n_threads_fn)(void *ctx);
typedef void (*attach_fn)(void *ctx, void *pool, void *pool_batch);
typedef void (*detach_fn)(void *ctx);
typedef void (*params_init_fn)(void *params, int n_threads);
typedef void *(*pool_new_fn)(void *params);
typedef void (*pool_free_fn)(void *pool);
typedef void *(*dev_by_type_fn)(int type);
typedef void *(*dev_reg_fn)(void *dev);
typedef void *(*proc_fn)(void *reg, const char *name);

int32_t llama_decode(void *ctx, struct llama_batch batch);
void llama_free(void *ctx);

/* GGML_BACKEND_DEVICE_TYPE_CPU in ggml-backend.h. */
#define DEVICE_TYPE_CPU 0

#define MAX_OBJECTS 512
struct objects {
  int n;
  char *names[MAX_OBJECTS];
};

/* Collects the loaded objects' names (dlopen is not called under dl_iterate_phdr's lock). */
static int collect(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct objects *o = data;
  if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0' || o->n >= MAX_OBJECTS) return 0;
  o->names[o->n] = strdup(info->dlpi_name);
  if (o->names[o->n] != NULL) o->n++;
  return 0;
}

/* Defined by this library only: an object that has it is a copy of the shim, never llama.cpp. */
const int autotune_llama_threadpool_shim = 1;

/* The first definition of `name` in a loaded object other than a copy of this library. */
static void *find(const char *name, void *self) {
  struct objects o = { 0 };
  dl_iterate_phdr(collect, &o);
  void *found = NULL;
  for (int i = 0; i < o.n; i++) {
    if (found == NULL) {
      void *h = dlopen(o.names[i], RTLD_LAZY | RTLD_NOLOAD);
      if (h != NULL) {
        void *s = dlsym(h, name);
        if (s != NULL && s != self && dlsym(h, "autotune_llama_threadpool_shim") == NULL) found = s;
        dlclose(h);
      }
    }
    free(o.names[i]);
  }
  return found;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool resolved = false;
static bool usable = false;
static decode_fn real_decode;
static free_fn real_free;
static n_threads_fn n_threads, n_threads_batch;
static attach_fn attach;
static detach_fn detach;
static params_init_fn params_init;
static pool_new_fn pool_new;
static pool_free_fn pool_free;

/* Under `mu`. llama.cpp's functions, found once: the addon has loaded them by its first decode. */
static void resolve(void) {
  if (resolved) return;
  resolved = true;
  real_decode = (decode_fn)find("llama_decode", (void *)llama_decode);
  real_free = (free_fn)find("llama_free", (void *)llama_free);
  n_threads = (n_threads_fn)find("llama_n_threads", NULL);
  n_threads_batch = (n_threads_fn)find("llama_n_threads_batch", NULL);
  attach = (attach_fn)find("llama_attach_threadpool", NULL);
  detach = (detach_fn)find("llama_detach_threadpool", NULL);
  params_init = (params_init_fn)find("ggml_threadpool_params_init", NULL);
  dev_by_type_fn by_type = (dev_by_type_fn)find("ggml_backend_dev_by_type", NULL);
  dev_reg_fn dev_reg = (dev_reg_fn)find("ggml_backend_dev_backend_reg", NULL);
  proc_fn proc = (proc_fn)find("ggml_backend_reg_get_proc_address", NULL);
  if (by_type != NULL && dev_reg != NULL && proc != NULL) {
    void *dev = by_type(DEVICE_TYPE_CPU);
    void *reg = dev == NULL ? NULL : dev_reg(dev);
    if (reg != NULL) {
      pool_new = (pool_new_fn)proc(reg, "ggml_threadpool_new");
      pool_free = (pool_free_fn)proc(reg, "ggml_threadpool_free");
    }
  }
  usable = real_decode != NULL && real_free != NULL && n_threads != NULL && n_threads_batch != NULL && attach != NULL &&
    detach != NULL && params_init != NULL && pool_new != NULL && pool_free != NULL;
  if (!usable) fprintf(stderr, "autotune: llama.cpp's threadpool functions not found: contexts keep per-graph threads\n");
}

#define MAX_CONTEXTS 64
#define MAX_RETIRED 4
/*
 * Each context with a pool, the pool's threads, and the pools it replaced: llama.cpp's CPU backend
 * still points at a replaced pool until its next compute (which pauses it, ggml-cpu.cpp
 * `ggml_backend_cpu_set_threadpool`), so those are freed with the context, not before.
 */
static struct {
  void *ctx;
  void *pool;
  int threads;
  int retired;
  void *replaced[MAX_RETIRED + 1]; /* + the last pool, when the context went back to per-graph threads */
} pools[MAX_CONTEXTS];

static int slot_of(void *ctx) {
  for (int i = 0; i < MAX_CONTEXTS; i++) if (pools[i].ctx == ctx) return i;
  return -1;
}

/*
 * Under `mu`: `ctx` (in slot `i`, with a pool) goes back to llama.cpp's per-graph threads; its pools
 * are kept (the backend may still point at the last) until it is freed. threads 0 marks it.
 */
static void per_graph(int i, void *ctx) {
  if (pools[i].pool != NULL) {
    detach(ctx);
    pools[i].replaced[pools[i].retired++] = pools[i].pool;
  }
  pools[i].ctx = ctx;
  pools[i].pool = NULL;
  pools[i].threads = 0;
}

/*
 * Under `mu`: `ctx` computes on a pool of exactly its threads (a bigger one would wake its idle
 * workers at every graph, and they would poll a core away; a smaller one would cap its threads), or
 * on llama.cpp's per-graph threads where it cannot (more live contexts than slots, no pool made, or a
 * context whose thread count changed more than MAX_RETIRED times), said once on stderr.
 */
static void ensure_pool(void *ctx) {
  int want = n_threads(ctx);
  int batch = n_threads_batch(ctx);
  if (batch > want) want = batch;
  int i = slot_of(ctx);
  if (i >= 0 && (pools[i].threads == want || pools[i].threads == 0)) return; /* 0: per graph from now on */
  if (i >= 0 && pools[i].retired == MAX_RETIRED) {
    per_graph(i, ctx);
    fprintf(stderr, "autotune: a llama.cpp context changed its thread count more than %d times: it computes on per-graph threads from now on\n", MAX_RETIRED);
    return;
  }
  if (i < 0) i = slot_of(NULL);
  if (i < 0) {
    static bool said = false;
    if (!said) fprintf(stderr, "autotune: more than %d llama.cpp contexts at once: the others compute on per-graph threads\n", MAX_CONTEXTS);
    said = true;
    return;
  }
  /* struct ggml_threadpool_params is 528 bytes in this llama.cpp; room to spare, initialized by llama.cpp. */
  _Alignas(16) unsigned char params[4096];
  memset(params, 0, sizeof params);
  params_init(params, want);
  void *pool = pool_new(params);
  if (pool == NULL) {
    /* A context with a smaller pool would have its threads capped: per-graph threads instead. */
    per_graph(i, ctx); /* also a context new to its slot: said once, not at every decode */
    fprintf(stderr, "autotune: ggml could not make a threadpool of %d thread(s): that context computes on per-graph threads\n", want);
    return;
  }
  void *old = pools[i].ctx == ctx ? pools[i].pool : NULL;
  if (old != NULL) {
    detach(ctx);
    pools[i].replaced[pools[i].retired++] = old;
  }
  attach(ctx, pool, NULL);
  pools[i].ctx = ctx;
  pools[i].pool = pool;
  pools[i].threads = want;
  fprintf(stderr, "autotune: a persistent ggml threadpool of %d thread(s) attached to a llama.cpp context\n", want);
}

int32_t llama_decode(void *ctx, struct llama_batch batch) {
  pthread_mutex_lock(&mu);
  resolve();
  if (usable) ensure_pool(ctx);
  decode_fn decode = real_decode;
  pthread_mutex_unlock(&mu);
  if (decode == NULL) return -1; /* not reached: the addon that called this loaded llama.cpp */
  return decode(ctx, batch);
}

void llama_free(void *ctx) {
  pthread_mutex_lock(&mu);
  resolve();
  free_fn release = real_free;
  int i = ctx == NULL ? -1 : slot_of(ctx);
  void *owned[MAX_RETIRED + 2];
  int n = 0;
  if (i >= 0) {
    if (pools[i].pool != NULL) owned[n++] = pools[i].pool;
    for (int k = 0; k < pools[i].retired; k++) if (pools[i].replaced[k] != NULL) owned[n++] = pools[i].replaced[k];
    memset(&pools[i], 0, sizeof pools[i]);
  }
  pthread_mutex_unlock(&mu);
  if (release != NULL) release(ctx);
  /* The context is gone, and with it the last user of its pools. */
  for (int k = 0; k < n; k++) pool_free(owned[k]);
}

/* Node-API's module entry (process.dlopen keeps the library loaded): exports nothing. */
void *napi_register_module_v1(void *env, void *exports) {
  (void)env;
  return exports;
}
