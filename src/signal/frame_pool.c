/*
 * The blocks of replay-buffer frames, kept for the next frames rather than given back to malloc
 * at once (docs/signal.md, "Frames kept for reuse").
 *
 * Why: a relayed frame lives from its numbering until its client's acknowledgement, which comes
 * every few dozen frames, so frames are freed in bursts and allocated one at a time. glibc's
 * per-thread cache holds seven blocks of a size; the rest of a burst went through _int_free and
 * its coalescing, and the next allocations through _int_malloc's bins: about 600 instructions a
 * relayed frame (bench/signal/instr.sh), and page faults as the top of the heap was trimmed and
 * touched again. Here each block's capacity is what fills one of glibc's chunks (16-byte steps,
 * less the chunk's 8-byte header) up to a 1 KiB chunk: a frame's block costs what malloc would
 * have given it, no more (64-byte steps cost 24 bytes a frame more on average, about 36 bytes
 * per idle session, whose `joined` and `peer_joined` wait for an acknowledgement); a released
 * block goes, wiped, to a list of its size, the most recently released first (its lines the
 * likeliest to be in the cache), up to AR__SIG_FRAME_POOL_BYTES a worker. Larger frames (an
 * offer of several kilobytes) and blocks beyond the bound go back to malloc as before.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <malloc.h>
#include <stddef.h>
#include <sodium.h>

/* Under AddressSanitizer a kept block is poisoned but for its link, so that a frame read after
 * its release is still reported, as it was when the block went back to malloc. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define KEPT(f, n) ASAN_POISON_MEMORY_REGION((char *)(f) + sizeof(void *), (n) - sizeof(void *))
#define TAKEN(f, n) ASAN_UNPOISON_MEMORY_REGION((f), (n))
#else
#define KEPT(f, n) ((void)(f), (void)(n))
#define TAKEN(f, n) ((void)(f), (void)(n))
#endif

/* A kept block's link is the frame's own first field. */
_Static_assert(offsetof(ar__sig_frame_t, next) == 0, "a frame's link moved");

/* The capacity of class c: a chunk of (c + 2) steps, less its header (32 bytes is glibc's
 * smallest chunk; a frame's header alone is 40). */
static size_t cap_of(int c)
{
    return (size_t)(c + 2) * AR__SIG_FRAME_STEP - AR__SIG_FRAME_CHUNK_HDR;
}

/* The pool's class of a block the allocator says holds `usable` bytes, or -1 for none: the
 * largest whose capacity it holds. A block asked for at a class's capacity has exactly that
 * many usable bytes (under glibc and under ASan), so its class is known without a field in the
 * frame. One larger than the largest class (a frame asked for at its length) is not kept,
 * whichever allocator rounded it. */
static int class_of(size_t usable)
{
    if (usable > cap_of(AR__SIG_FRAME_CLASSES - 1))
        return -1;
    size_t k = (usable + AR__SIG_FRAME_CHUNK_HDR) / AR__SIG_FRAME_STEP;
    return k < 2 ? -1 : (int)(k - 2);
}

ar__sig_frame_t *ar__sig_frame_alloc(ar__sig_srv_t *srv, size_t len)
{
    /* The first class whose capacity holds it, if any. */
    size_t need = sizeof(ar__sig_frame_t) + len + 1,
           k = (need + AR__SIG_FRAME_CHUNK_HDR + AR__SIG_FRAME_STEP - 1) / AR__SIG_FRAME_STEP;
    if (k - 2 >= AR__SIG_FRAME_CLASSES)
        return ar_malloc(need);
    int c = (int)(k - 2);
    size_t cap = cap_of(c);
    ar__sig_frame_t *f = srv->frame_pool[c];
    if (!f)
        return ar_malloc(cap);
    srv->frame_pool[c] = f->next;
    srv->frame_pool_bytes -= cap;
    TAKEN(f, cap);
    return f;
}

void ar__sig_frame_release(ar__sig_srv_t *srv, ar__sig_frame_t *f)
{
    size_t usable = malloc_usable_size(f);
    /* The whole block, not only f->len: its header and the allocator's slack too, as before it
     * went back to malloc; a pooled block is as clean as a freed one. */
    sodium_memzero(f, usable);
    int c = class_of(usable);
    size_t cap = c < 0 ? 0 : cap_of(c);
    if (c < 0 || srv->frame_pool_bytes + cap > AR__SIG_FRAME_POOL_BYTES) {
        ar_free(f);
        return;
    }
    f->next = srv->frame_pool[c];
    srv->frame_pool[c] = f;
    srv->frame_pool_bytes += cap;
    KEPT(f, cap);
}

void ar__sig_frame_pool_free(ar__sig_srv_t *srv)
{
    for (int c = 0; c < AR__SIG_FRAME_CLASSES; c++) {
        while (srv->frame_pool[c]) {
            ar__sig_frame_t *f = srv->frame_pool[c];
            srv->frame_pool[c] = f->next;
            TAKEN(f, cap_of(c));
            ar_free(f);
        }
    }
    srv->frame_pool_bytes = 0;
}
