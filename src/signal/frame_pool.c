/*
 * The blocks of replay-buffer frames, carved from slabs of a region the worker maps for them
 * alone (docs/signal.md, "Frames in slabs").
 *
 * Why a region of their own: a frame lives from its numbering until its client's
 * acknowledgement. An idle session's `joined` and `peer_joined` wait for the client's first
 * `pong`; allocated by malloc between the session's other blocks, their memory stayed with the
 * worker after the acknowledgement (a hole in pages that the session's live blocks keep
 * resident): 281 of the 973 bytes an idle session cost (docs/performance.md,
 * "Idle sessions: frames in slabs"). Here frames share pages only with frames, so pages whose
 * frames were all acknowledged are handed back to the kernel (MADV_DONTNEED) once they have been
 * empty for AR__SIG_SLAB_IDLE_S seconds.
 *
 * Why slabs and not free lists over malloc (as before): a relayed frame is freed in bursts (its
 * client acknowledges every few dozen frames) and allocated one at a time; glibc's per-thread
 * cache holds seven blocks of a size, the rest went through _int_free and _int_malloc's bins,
 * about 600 instructions a frame (bench/signal/instr.sh). A slab hands out a released block of
 * its class (the most recent first, its lines the likeliest in the cache) or the next never
 * used one, and takes it back onto its list: a few instructions either way.
 *
 * A class is a block size in 16-byte steps from 48 to 1,024 bytes (a frame's header alone is 40).
 * Blocks are wiped as they are released, so that nothing of a frame outlives it (S4). A frame
 * larger than the largest class (an offer of several kilobytes), and any frame once the region is
 * full or could not be mapped, comes from malloc as before.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <malloc.h>
#include <stddef.h>
#include <sodium.h>
#include <sys/mman.h>

/* Under AddressSanitizer a block is poisoned while it is not handed out (but for its link while
 * on a free list), so that a frame read after its release is still reported, as it is when the
 * block goes back to malloc; the region is poisoned a slab at a time as slabs come into use. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* A free block's link is the frame's own first field. */
_Static_assert(offsetof(ar__sig_frame_t, next) == 0, "a frame's link moved");

#define SLAB_BYTES ((size_t)1 << AR__SIG_SLAB_SHIFT)
#define NONE (-1)
/* The smallest class's block: the frame header and a little body, a whole number of steps. */
#define CLASS0_BYTES ((size_t)3 * AR__SIG_FRAME_STEP)
_Static_assert(sizeof(ar__sig_frame_t) < CLASS0_BYTES, "a frame header fits the smallest block");
_Static_assert(SLAB_BYTES / CLASS0_BYTES <= UINT16_MAX, "a slab's block counts are 16-bit");

/* Which list a slab is on. */
enum { ON_NONE, ON_ROOM, ON_EMPTY, ON_CLEAN };

typedef struct slab_s {
    ar__sig_frame_t *free; /* released blocks, the most recent first */
    int32_t prev, next;    /* on its list (ON_ROOM: its class's; ON_EMPTY, ON_CLEAN) */
    uint32_t empty_since;  /* ON_EMPTY: srv->now when its last block was released */
    uint16_t live;         /* blocks handed out */
    uint16_t fresh;        /* blocks handed out at least once since the slab took its class */
    int8_t cls;            /* NONE while it has none (never used, or handed back) */
    uint8_t on;
} slab_t;

/*
 * ON_ROOM: its class's slabs with a block in use and one to hand out, which allocation prefers
 * so that the others empty. ON_EMPTY: no block in use, pages still resident, the most recently
 * emptied first. ON_CLEAN: pages handed back. A full slab is on no list.
 */
struct ar__sig_frame_slabs_s {
    char *base;
    int32_t top; /* slabs of the region ever used: the rest never touched */
    int32_t room[AR__SIG_FRAME_CLASSES];
    int32_t empty, clean;
    uint32_t resident; /* slabs whose pages may be resident: in use or empty */
    size_t live;       /* blocks handed out */
    slab_t slab[];     /* AR__SIG_SLABS, their pages touched as they are used */
};

static size_t cap_of(int c)
{
    return CLASS0_BYTES + (size_t)c * AR__SIG_FRAME_STEP;
}

static uint16_t blocks_of(int c)
{
    return (uint16_t)(SLAB_BYTES / cap_of(c));
}

static char *slab_mem(const ar__sig_frame_slabs_t *z, int32_t i)
{
    return z->base + (size_t)i * SLAB_BYTES;
}

/* ---- lists (doubly linked by index) ---- */

static void list_push(ar__sig_frame_slabs_t *z, int32_t *head, int32_t i, uint8_t on)
{
    slab_t *s = &z->slab[i];
    s->prev = NONE;
    s->next = *head;
    if (*head != NONE)
        z->slab[*head].prev = i;
    *head = i;
    s->on = on;
}

static void list_remove(ar__sig_frame_slabs_t *z, int32_t *head, int32_t i)
{
    slab_t *s = &z->slab[i];
    if (s->prev != NONE)
        z->slab[s->prev].next = s->next;
    else
        *head = s->next;
    if (s->next != NONE)
        z->slab[s->next].prev = s->prev;
    s->prev = s->next = NONE;
    s->on = ON_NONE;
}

/* ---- the region ---- */

/* The worker's slabs, mapped at the first frame; NULL when they cannot be (logged once). The
 * region is address space only until used (MAP_NORESERVE): its pages cost nothing untouched. */
static ar__sig_frame_slabs_t *slabs(ar__sig_srv_t *srv)
{
    if (srv->slabs || srv->slabs_failed)
        return srv->slabs;
    ar__sig_frame_slabs_t *z =
        ar_calloc(1, sizeof(*z) + (size_t)AR__SIG_SLABS * sizeof(slab_t)); /* zero pages */
    if (!z)
        return NULL; /* this frame from malloc; the slabs are tried again at the next */
    void *base = mmap(NULL, (size_t)AR__SIG_SLABS * SLAB_BYTES, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) { /* no address space for them: frames from malloc for good */
        ar_free(z);
        srv->slabs_failed = 1;
        ar_log0(AR_LOG_WARN, "signal_frame_slabs_unmapped");
        return NULL;
    }
    z->base = base;
    for (int c = 0; c < AR__SIG_FRAME_CLASSES; c++)
        z->room[c] = NONE;
    z->empty = z->clean = NONE;
    srv->slabs = z;
    return z;
}

/* A slab for class c, on c's list: an emptied one (its pages warm), else one handed back, else
 * one never used; NONE when the region is full. Taking memory the worker does not hold counts as
 * an allocation for the test hook (ar_alloc_check), as a malloc would. */
static int32_t slab_for(ar__sig_frame_slabs_t *z, int c)
{
    int32_t i = z->empty;
    if (i != NONE) {
        list_remove(z, &z->empty, i);
    } else {
        if ((z->clean == NONE && z->top == AR__SIG_SLABS) || ar_alloc_check() != 0)
            return NONE;
        if (z->clean != NONE) {
            i = z->clean;
            list_remove(z, &z->clean, i);
        } else {
            i = z->top++;
        }
        z->resident++;
    }
    slab_t *s = &z->slab[i];
    /* Every block of an empty slab is wiped (released so, or never written): all are fresh. */
    s->free = NULL;
    s->live = s->fresh = 0;
    s->cls = (int8_t)c;
    POISON(slab_mem(z, i), SLAB_BYTES);
    list_push(z, &z->room[c], i, ON_ROOM);
    return i;
}

/* A block of class c, or NULL when no slab has one. */
static ar__sig_frame_t *block_take(ar__sig_frame_slabs_t *z, int c)
{
    int32_t i = z->room[c];
    if (i == NONE && (i = slab_for(z, c)) == NONE)
        return NULL;
    slab_t *s = &z->slab[i];
    size_t cap = cap_of(c);
    ar__sig_frame_t *f = s->free;
    if (f) {
        UNPOISON(f, cap);
        s->free = f->next;
    } else {
        f = (ar__sig_frame_t *)(slab_mem(z, i) + (size_t)s->fresh++ * cap);
        UNPOISON(f, cap);
    }
    s->live++;
    z->live++;
    if (!s->free && s->fresh == blocks_of(c))
        list_remove(z, &z->room[c], i); /* full */
    return f;
}

/* f, of slab i, back on its slab's list, wiped whole (its header and the slack past its length
 * too: a kept block is as clean as a freed one). */
static void block_give(ar__sig_srv_t *srv, ar__sig_frame_slabs_t *z, int32_t i, ar__sig_frame_t *f)
{
    slab_t *s = &z->slab[i];
    size_t cap = cap_of(s->cls);
    sodium_memzero(f, cap);
    f->next = s->free;
    s->free = f;
    POISON((char *)f + sizeof(void *), cap - sizeof(void *));
    s->live--;
    z->live--;
    if (s->live == 0) {
        if (s->on == ON_ROOM)
            list_remove(z, &z->room[s->cls], i);
        s->empty_since = srv->now;
        list_push(z, &z->empty, i, ON_EMPTY);
    } else if (s->on == ON_NONE) {
        list_push(z, &z->room[s->cls], i, ON_ROOM); /* was full */
    }
}

/* The slab holding p, or NONE when p is not in the region (a frame from malloc). */
static int32_t slab_of(const ar__sig_frame_slabs_t *z, const void *p)
{
    if (!z || (const char *)p < z->base)
        return NONE;
    size_t off = (size_t)((const char *)p - z->base);
    return off < (size_t)AR__SIG_SLABS * SLAB_BYTES ? (int32_t)(off >> AR__SIG_SLAB_SHIFT) : NONE;
}

/* ---- frames ---- */

ar__sig_frame_t *ar__sig_frame_alloc(ar__sig_srv_t *srv, size_t len)
{
    size_t need = sizeof(ar__sig_frame_t) + len + 1;
    if (need > cap_of(AR__SIG_FRAME_CLASSES - 1))
        return ar_malloc(need);
    /* The first class whose blocks hold it. */
    int c = need <= CLASS0_BYTES
                ? 0
                : (int)((need - CLASS0_BYTES + AR__SIG_FRAME_STEP - 1) / AR__SIG_FRAME_STEP);
    ar__sig_frame_slabs_t *z = slabs(srv);
    ar__sig_frame_t *f = z ? block_take(z, c) : NULL;
    /* The region full (or unmapped): malloc, whose failures the caller handles. */
    return f ? f : ar_malloc(need);
}

void ar__sig_frame_release(ar__sig_srv_t *srv, ar__sig_frame_t *f)
{
    int32_t i = slab_of(srv->slabs, f);
    if (i == NONE) {
        ar_free_wiped(f);
        return;
    }
    block_give(srv, srv->slabs, i, f);
}

size_t ar__sig_frame_cap(const ar__sig_srv_t *srv, const ar__sig_frame_t *f)
{
    int32_t i = slab_of(srv->slabs, f);
    return i == NONE ? malloc_usable_size((void *)f) : cap_of(srv->slabs->slab[i].cls);
}

void ar__sig_frame_slabs_tick(ar__sig_srv_t *srv)
{
    ar__sig_frame_slabs_t *z = srv->slabs;
    if (!z)
        return;
    /* The list is by the time each slab emptied, the latest first: hand back from its end. */
    int32_t i = z->empty, last = NONE;
    while (i != NONE) {
        last = i;
        i = z->slab[i].next;
    }
    for (i = last; i != NONE;) {
        slab_t *s = &z->slab[i];
        int32_t prev = s->prev;
        if (srv->now - s->empty_since < AR__SIG_SLAB_IDLE_S)
            break;
        list_remove(z, &z->empty, i);
        /* Its blocks are wiped already; the kernel gives zero pages at the next touch. A refusal
         * (none is expected) leaves the pages resident, still wiped. */
        (void)madvise(slab_mem(z, i), SLAB_BYTES, MADV_DONTNEED);
        s->cls = NONE;
        list_push(z, &z->clean, i, ON_CLEAN);
        z->resident--;
        i = prev;
    }
}

uint32_t ar__sig_frame_slabs_resident(const ar__sig_srv_t *srv)
{
    return srv->slabs ? srv->slabs->resident : 0;
}

void ar__sig_frame_pool_free(ar__sig_srv_t *srv)
{
    ar__sig_frame_slabs_t *z = srv->slabs;
    /* A frame still held (a session a stopping worker leaves to its backup) keeps the region:
     * nothing may read an unmapped frame, and the process ends next. */
    if (!z || z->live)
        return;
    UNPOISON(z->base, (size_t)z->top * SLAB_BYTES);
    munmap(z->base, (size_t)AR__SIG_SLABS * SLAB_BYTES);
    ar_free(z);
    srv->slabs = NULL;
}
