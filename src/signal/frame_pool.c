/*
 * The blocks of replay-buffer frames, kept for the next frames rather than given back to malloc
 * at once (docs/signal.md, "Frames kept for reuse").
 *
 * Why: a relayed frame lives from its numbering until its client's acknowledgement, which comes
 * every few dozen frames, so frames are freed in bursts and allocated one at a time. glibc's
 * per-thread cache holds seven blocks of a size; the rest of a burst went through _int_free and
 * its coalescing, and the next allocations through _int_malloc's bins: about 600 instructions a
 * relayed frame (bench/signal/instr.sh), and page faults as the top of the heap was trimmed and
 * touched again. Here each block's capacity is a multiple of 64 bytes up to 1 KiB; a released
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

/* The pool's class of a block the allocator says holds `usable` bytes, or -1 for none. A block
 * asked for at capacity c (a multiple of the step) has at least c and less than c + step usable
 * bytes (glibc adds 8, ASan none), so its class is known without a field in the frame. */
static int class_of(size_t usable)
{
    size_t k = usable / AR__SIG_FRAME_STEP;
    return k >= 1 && k <= AR__SIG_FRAME_CLASSES ? (int)k - 1 : -1;
}

ar__sig_frame_t *ar__sig_frame_alloc(ar__sig_srv_t *srv, size_t len)
{
    /* The class whose capacity (a multiple of the step) is the first to hold it, if any. */
    size_t need = sizeof(ar__sig_frame_t) + len + 1,
           k = (need + AR__SIG_FRAME_STEP - 1) / AR__SIG_FRAME_STEP;
    if (k > AR__SIG_FRAME_CLASSES)
        return ar_malloc(need);
    size_t cap = k * AR__SIG_FRAME_STEP;
    ar__sig_frame_t *f = srv->frame_pool[k - 1];
    if (!f)
        return ar_malloc(cap);
    srv->frame_pool[k - 1] = f->next;
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
    size_t cap = (size_t)(c + 1) * AR__SIG_FRAME_STEP;
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
            TAKEN(f, (size_t)(c + 1) * AR__SIG_FRAME_STEP);
            ar_free(f);
        }
    }
    srv->frame_pool_bytes = 0;
}
