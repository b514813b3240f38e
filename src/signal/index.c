/*
 * The replicated view: session records, rooms (who is in which room) and waiting areas (who
 * waits where, who watches the queue). Every worker of a jurisdiction holds the same view,
 * updated from the bus (bus.c), so a join, a take or a relay is checked locally with no
 * round trip. Rooms and areas exist only while someone is in them: nothing outlives its last
 * session, and nothing here is ever written anywhere (P2, S4).
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static uint32_t hash(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (uint8_t)*a) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (; b && *b; b++)
        h = (h ^ (uint8_t)*b) * 16777619u;
    return h;
}

/*
 * A record's bucket: the relay looks up its target's record for every message, and the byte-at-a-
 * time hash above cost about 180 instructions a message there with strcmp along the chain
 * (bench/signal/instr.sh). Every record's peer id is AR__SIG_PEER_LEN characters
 * (ar__sig_rec_get makes no other), 128 random bits in base64url that the server drew, so three
 * overlapping words, multiplied and folded, spread them well; no one but the servers chooses
 * them, so a collision cannot be arranged (a client's lookup of an id of its choosing walks one
 * short chain). An id of another length has no record: *len says which it is.
 */
static uint32_t peer_hash_whole(const char *peer)
{
    uint64_t a, b, c;
    memcpy(&a, peer, 8);
    memcpy(&b, peer + 8, 8);
    memcpy(&c, peer + AR__SIG_PEER_LEN - 8, 8);
    uint64_t h = (a ^ 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
    h = (h ^ b ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
    h = (h ^ c ^ (h >> 32)) * 0xff51afd7ed558ccdull;
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t peer_hash(const char *peer, size_t *len)
{
    *len = strnlen(peer, AR__SIG_PEER_LEN + 1);
    return *len == AR__SIG_PEER_LEN ? peer_hash_whole(peer) : 0;
}

/* The bucket of a record's id in the table as it is now (there is one). */
static ar__sig_rec_t **peer_bucket(ar__sig_srv_t *srv, const char *peer, size_t *len)
{
    return &srv->recs[peer_hash(peer, len) & srv->rec_mask];
}

/*
 * The table doubled (or made, at AR__SIG_REC_BUCKETS_MIN) once a new record would make more
 * records than buckets, up to AR__SIG_REC_BUCKETS_MAX: chains stay about one record long, as
 * the relay's lookup wants, and a worker with few records holds a table of 8 to 16 bytes a
 * record rather than the fixed 512 KiB it had (no more at the most: the memory of a full node is
 * what it was). Every record is moved at once: about a cache miss each, a few milliseconds at
 * 32,768 records, the last doubling. Without memory for the bigger table the chains just grow
 * longer; without a table at all, the record cannot be made (-1). Not under a walk (rec_walks): it
 * would see buckets twice or never.
 */
static int table_room(ar__sig_srv_t *srv)
{
    size_t n = ar__sig_rec_buckets(srv);
    if (n && (srv->nrecs < n || n >= AR__SIG_REC_BUCKETS_MAX || srv->rec_walks))
        return 0;
    size_t m = n ? 2 * n : AR__SIG_REC_BUCKETS_MIN;
    ar__sig_rec_t **t = ar_calloc(m, sizeof(ar__sig_rec_t *));
    if (!t)
        return n ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        for (ar__sig_rec_t *r = srv->recs[i], *next; r; r = next) {
            next = r->hnext;
            size_t len;
            ar__sig_rec_t **b = &t[peer_hash(r->peer, &len) & (m - 1)];
            r->hnext = *b;
            *b = r;
        }
    }
    ar_free(srv->recs);
    srv->recs = t;
    srv->rec_mask = (uint32_t)(m - 1);
    return 0;
}

void ar__sig_rec_walk_begin(ar__sig_srv_t *srv)
{
    srv->rec_walks++;
}

void ar__sig_rec_walk_end(ar__sig_srv_t *srv)
{
    srv->rec_walks--;
}

void ar__sig_recs_free(ar__sig_srv_t *srv)
{
    ar_free(srv->recs);
    srv->recs = NULL;
    srv->rec_mask = srv->nrecs = 0;
}

char ar__sig_empty[1];

static void str_free(char **dst, int wipe)
{
    if (*dst == ar__sig_empty)
        return; /* also ar__sig_no_q's, which is never written */
    if (wipe)
        ar_free_wiped(*dst);
    else
        ar_free(*dst);
    *dst = ar__sig_empty;
}

static void str_set(char **dst, const char *v, size_t cap, int wipe)
{
    if (*dst && strcmp(*dst, v) == 0 && strlen(v) <= cap)
        return; /* also when v is *dst */
    size_t n = strnlen(v, cap);
    char *c = n ? ar_malloc(n + 1) : NULL;
    if (c) {
        memcpy(c, v, n);
        c[n] = '\0';
    }
    str_free(dst, wipe);
    *dst = c ? c : ar__sig_empty;
}

void ar__sig_str_set(char **dst, const char *v, size_t cap)
{
    str_set(dst, v, cap, 0);
}

void ar__sig_str_free(char **dst)
{
    str_free(dst, 0);
}

void ar__sig_str_set_personal(char **dst, const char *v, size_t cap)
{
    str_set(dst, v, cap, 1);
}

void ar__sig_str_free_personal(char **dst)
{
    str_free(dst, 1);
}

void ar__sig_name_wipe(char **name)
{
    if (*name)
        str_free(name, 1);
    *name = NULL;
}

/* One answer string: NULL when its copy found no memory (its length is still set). */
static void answer_wipe(ar_sig_str_t *t)
{
    ar_free_wiped((void *)t->p);
    *t = (ar_sig_str_t){NULL, 0};
}

void ar__sig_answers_wipe(ar__sig_recq_t *q)
{
    for (size_t i = 0; q->ans && i < q->nans; i++) {
        answer_wipe(&q->ans[i].q);
        answer_wipe(&q->ans[i].a);
    }
    q->nans = 0;
}

const ar__sig_recq_t ar__sig_no_q = {.clinic = ar__sig_empty,
                                     .area = ar__sig_empty,
                                     .by = ar__sig_empty,
                                     .by_name = ar__sig_empty,
                                     .lang = ar__sig_empty};

ar__sig_recq_t *ar__sig_rec_q(ar__sig_rec_t *r)
{
    if (r->q != &ar__sig_no_q)
        return r->q;
    ar__sig_recq_t *q = ar_malloc(sizeof(*q));
    if (!q)
        return NULL;
    *q = ar__sig_no_q;
    r->q = q;
    return q;
}

/* peer: AR__SIG_PEER_LEN bytes (the relay's target, its length checked): no strnlen. One with a
 * NUL among them finds nothing, as with ar__sig_rec_find: every record's id has none. */
ar__sig_rec_t *ar__sig_rec_find_whole(ar__sig_srv_t *srv, const char *peer)
{
    if (!srv->recs)
        return NULL;
    ar__sig_rec_t *r = srv->recs[peer_hash_whole(peer) & srv->rec_mask];
    while (r && memcmp(r->peer, peer, AR__SIG_PEER_LEN) != 0)
        r = r->hnext;
    return r;
}

/* An id of another length has no record. */
ar__sig_rec_t *ar__sig_rec_find(ar__sig_srv_t *srv, const char *peer)
{
    if (strnlen(peer, AR__SIG_PEER_LEN + 1) != AR__SIG_PEER_LEN)
        return NULL;
    return ar__sig_rec_find_whole(srv, peer);
}

ar__sig_rec_t *ar__sig_rec_get(ar__sig_srv_t *srv, const char *peer)
{
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    if (r || strnlen(peer, AR__SIG_PEER_LEN + 1) != AR__SIG_PEER_LEN)
        return r;
    r = ar_calloc(1, sizeof(*r));
    if (r && table_room(srv) != 0) {
        ar_free(r);
        return NULL;
    }
    if (!r)
        return NULL;
    memcpy(r->peer, peer, AR__SIG_PEER_LEN + 1);
    r->q = (ar__sig_recq_t *)&ar__sig_no_q; /* read only until ar__sig_rec_q */
    size_t n;
    ar__sig_rec_t **b = peer_bucket(srv, peer, &n);
    r->hnext = *b;
    *b = r;
    srv->nrecs++;
    return r;
}

static void free_strings(ar__sig_rec_t *r)
{
    ar__sig_recq_t *q = r->q;
    if (q == &ar__sig_no_q)
        return;
    ar__sig_name_wipe(&q->name);
    ar__sig_answers_wipe(q);
    ar_free(q->ans);
    ar__sig_str_free(&q->clinic);
    ar__sig_str_free(&q->area);
    ar__sig_str_free_personal(&q->lang);
    ar__sig_str_free(&q->by);
    ar__sig_str_free_personal(&q->by_name);
    ar_free(q);
    r->q = (ar__sig_recq_t *)&ar__sig_no_q;
}

void ar__sig_rec_free(ar__sig_srv_t *srv, ar__sig_rec_t *r)
{
    if (r->local)
        ar__sig_sess_free(srv, r->local);
    ar__sig_rec_set_room(srv, r, "");
    ar__sig_rec_set_area(srv, r, "", "");
    const ar__sig_recq_t *q = r->q;
    for (size_t i = 0; i < q->nsubs; i++)
        ar__sig_area_unsub(srv, r, ar__sig_area_find(srv, q->subs[i][0].s, q->subs[i][1].s));
    ar_free(q->subs); /* NULL on ar__sig_no_q; the part itself goes with the strings */
    free_strings(r);
    size_t n;
    ar__sig_rec_t **p = srv->recs ? peer_bucket(srv, r->peer, &n) : NULL;
    while (p && *p && *p != r)
        p = &(*p)->hnext;
    if (p && *p) {
        *p = r->hnext;
        srv->nrecs--;
    }
    srv->recs_freed++;
    /* Names and answers are wiped before the memory goes back (S4). */
    memset(r, 0, sizeof(*r));
    ar_free(r);
}

/* ---- rooms ---- */

/* Every worker holds every room, one per two idle sessions: with an id of up to 15 characters
 * (the app's and the benchmark's are 15) a room takes glibc's 80-byte chunk (n bytes cost
 * (n + 8 + 15) & ~15), where eight inline member slots and its own clinic copy made it 112 and
 * 32 bytes. A field more (the overflow and the clinic apart, say) would make it 96. */
_Static_assert(offsetof(ar__sig_room_t, id) + 16 + 8 <= 80, "a room fits glibc's 80-byte chunk");
_Static_assert(2 * AR__SIG_ROOM_MAX <= UINT8_MAX, "nmembers counts every member a race lets in");

static ar__sig_clinic_t **clinic_slot(ar__sig_room_t *room)
{
    return room->nmembers > AR__SIG_ROOM_MAX ? &room->u.more->clinic : &room->u.clinic;
}

/* One reference less to c; the copy goes with the last. */
static void clinic_unref(ar__sig_srv_t *srv, ar__sig_clinic_t *c)
{
    if (!c || --c->refs)
        return;
    ar__sig_clinic_t **p = &srv->clinics[hash(c->id, NULL) % AR__SIG_CLINIC_BUCKETS];
    while (*p && *p != c)
        p = &(*p)->hnext;
    if (*p)
        *p = c->hnext;
    srv->nclinics--;
    ar_free(c);
}

int ar__sig_room_set_clinic(ar__sig_srv_t *srv, ar__sig_room_t *room, const char *clinic)
{
    char id[AR_SIG_ID_MAX + 1];
    size_t n = strnlen(clinic, AR_SIG_ID_MAX);
    memcpy(id, clinic, n);
    id[n] = '\0';
    ar__sig_clinic_t **slot = clinic_slot(room);
    if (*slot ? strcmp((*slot)->id, id) == 0 : n == 0)
        return 0; /* every update of a member's record names it again */
    ar__sig_clinic_t *c = NULL;
    if (n) {
        ar__sig_clinic_t **b = &srv->clinics[hash(id, NULL) % AR__SIG_CLINIC_BUCKETS];
        for (c = *b; c && strcmp(c->id, id) != 0; c = c->hnext)
            ;
        if (!c && (c = ar_malloc(sizeof(*c) + n + 1))) {
            memcpy(c->id, id, n + 1);
            c->refs = 0;
            c->hnext = *b;
            *b = c;
            srv->nclinics++;
        }
        if (c)
            c->refs++;
    }
    clinic_unref(srv, *slot);
    *slot = c;
    return n && !c ? AR_ENOMEM : 0;
}

ar__sig_room_t *ar__sig_room_find(ar__sig_srv_t *srv, const char *id)
{
    ar__sig_room_t *r = srv->rooms[hash(id, NULL) % AR__SIG_SMALL_BUCKETS];
    while (r && strcmp(r->id, id) != 0)
        r = r->hnext;
    return r;
}

ar__sig_room_t *ar__sig_room_get(ar__sig_srv_t *srv, const char *id)
{
    ar__sig_room_t *r = ar__sig_room_find(srv, id);
    if (r || !id[0])
        return r;
    size_t n = strnlen(id, AR_SIG_ID_MAX);
    r = ar_calloc(1, offsetof(ar__sig_room_t, id) + n + 1);
    if (!r)
        return NULL;
    memcpy(r->id, id, n);
    ar__sig_room_ended_tag(r->id, r->etag);
    r->profile = AR_SIG_Q_STANDARD;
    ar__sig_room_t **b = &srv->rooms[hash(id, NULL) % AR__SIG_SMALL_BUCKETS];
    r->hnext = *b;
    *b = r;
    srv->nrooms++;
    return r;
}

void ar__sig_room_drop(ar__sig_srv_t *srv, ar__sig_room_t *room)
{
    for (size_t i = 0; i < room->nmembers; i++)
        ar__sig_room_member(room, i)->in_room = NULL;
    ar__sig_room_t **p = &srv->rooms[hash(room->id, NULL) % AR__SIG_SMALL_BUCKETS];
    while (*p && *p != room)
        p = &(*p)->hnext;
    if (*p)
        *p = room->hnext;
    srv->nrooms--;
    clinic_unref(srv, *clinic_slot(room));
    if (room->nmembers > AR__SIG_ROOM_MAX)
        ar_free(room->u.more);
    ar_free(room);
}

/* r as room's last member: -1 when it is full (2 * AR__SIG_ROOM_MAX), or without memory for
 * the overflow its fifth member needs. */
static int room_add(ar__sig_room_t *room, ar__sig_rec_t *r)
{
    size_t n = room->nmembers;
    if (n < AR__SIG_ROOM_MAX) {
        room->members[n] = r;
    } else if (n == AR__SIG_ROOM_MAX) {
        ar__sig_room_more_t *more = ar_calloc(1, sizeof(*more));
        if (!more)
            return -1;
        more->clinic = room->u.clinic;
        more->members[0] = r;
        room->u.more = more;
    } else if (n < (size_t)2 * AR__SIG_ROOM_MAX) {
        room->u.more->members[n - AR__SIG_ROOM_MAX] = r;
    } else {
        return -1;
    }
    room->nmembers = (uint8_t)(n + 1);
    return 0;
}

/* Member i of room out, the last in its place (a walk that removes member i looks at i again);
 * the overflow goes once four members or fewer are left. */
static void room_remove(ar__sig_room_t *room, size_t i)
{
    size_t n = room->nmembers - 1u;
    ar__sig_rec_t *last = ar__sig_room_member(room, n);
    if (i < AR__SIG_ROOM_MAX)
        room->members[i] = last;
    else
        room->u.more->members[i - AR__SIG_ROOM_MAX] = last;
    if (n == AR__SIG_ROOM_MAX) {
        ar__sig_room_more_t *more = room->u.more;
        room->u.clinic = more->clinic;
        ar_free(more);
    }
    room->nmembers = (uint8_t)n;
}

int ar__sig_joined_before(const ar__sig_rec_t *x, const ar__sig_rec_t *y)
{
    if (x->joined_us != y->joined_us)
        return x->joined_us < y->joined_us;
    return strcmp(x->peer, y->peer) < 0;
}

void ar__sig_rec_set_room(ar__sig_srv_t *srv, ar__sig_rec_t *r, const char *room)
{
    ar__sig_room_t *old = r->in_room;
    if (old && strcmp(old->id, room) == 0)
        return;
    /* room is not old->id (that returned above), and old is the only room dropped below. */
    if (old) {
        for (size_t i = 0; i < old->nmembers; i++) {
            if (ar__sig_room_member(old, i) == r) {
                room_remove(old, i);
                break;
            }
        }
        r->in_room = NULL;
        if (old->nmembers == 0)
            ar__sig_room_drop(srv, old);
    }
    if (!room[0])
        return;
    ar__sig_room_t *nr = ar__sig_room_get(srv, room);
    if (!nr)
        return;
    /* Members are ranked by this time on every worker (flows.c ar__sig_room_enforce, the seen
     * mark in area.c): a joiner ranks after every member its worker already sees, whatever the
     * clocks of the nodes involved. With the local clock alone, a node whose clock is behind by
     * more than an established member's time in the room would rank its joiner first and
     * have that member removed as the fifth. Two joins racing on two workers (neither seeing
     * the other) are still ordered by their clocks, then by peer id, alike everywhere. A
     * record applied from the bus then takes the joiner's time ("jt", rec.c).
     * The time also names r's stay in the room (remove.c: a removal applies only to the stay its
     * remover saw), so a stay never takes r's previous one's: a rejoin after the same member
     * whose time is ahead of ours (r's last stay ranked just after it too), or in the clock's
     * same microsecond. In a room with members it comes after r's previous time, as after
     * theirs; an empty room (no remover left in it) takes the local clock again. */
    uint64_t t = ar__sig_now_us();
    size_t n = nr->nmembers;
    for (size_t i = 0; i < n; i++)
        if (ar__sig_room_member(nr, i)->joined_us >= t)
            t = ar__sig_room_member(nr, i)->joined_us + 1;
    if (t == r->joined_us || (n && t < r->joined_us))
        t = r->joined_us + 1;
    /* Full, or no memory for its overflow (only a record from the bus, whose join raced others,
     * needs one: a join here is refused at four): r is in no room here, as ar__sig_rec_room
     * says (an empty room takes its first member). */
    if (room_add(nr, r) < 0)
        return;
    r->in_room = nr;
    r->joined_us = t;
}

/* ---- waiting areas ---- */

ar__sig_area_t *ar__sig_area_find(ar__sig_srv_t *srv, const char *clinic, const char *area)
{
    ar__sig_area_t *a = srv->areas[hash(clinic, area) % AR__SIG_SMALL_BUCKETS];
    while (a && (strcmp(a->clinic, clinic) != 0 || strcmp(a->area, area) != 0))
        a = a->hnext;
    return a;
}

ar__sig_area_t *ar__sig_area_get(ar__sig_srv_t *srv, const char *clinic, const char *area)
{
    ar__sig_area_t *a = ar__sig_area_find(srv, clinic, area);
    if (a || !clinic[0] || !area[0])
        return a;
    a = ar_calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    snprintf(a->clinic, sizeof(a->clinic), "%.*s", AR_SIG_ID_MAX, clinic);
    snprintf(a->area, sizeof(a->area), "%.*s", AR_SIG_ID_MAX, area);
    ar__sig_area_t **b = &srv->areas[hash(clinic, area) % AR__SIG_SMALL_BUCKETS];
    a->hnext = *b;
    *b = a;
    return a;
}

void ar__sig_area_gc(ar__sig_srv_t *srv, ar__sig_area_t *a)
{
    if (!a || a->npatients || a->nsubs)
        return;
    ar__sig_area_t **p = &srv->areas[hash(a->clinic, a->area) % AR__SIG_SMALL_BUCKETS];
    while (*p && *p != a)
        p = &(*p)->hnext;
    if (*p)
        *p = a->hnext;
    ar_free(a->patients);
    ar_free(a->subs);
    ar_free(a);
}

static int push(ar__sig_rec_t ***arr, size_t *n, size_t *cap, ar__sig_rec_t *r)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        ar__sig_rec_t **na = ar_realloc(*arr, nc * sizeof(ar__sig_rec_t *));
        if (!na)
            return AR_ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = r;
    return 0;
}

/* Where r was (SIZE_MAX: not there). */
static size_t remove_keep_order(ar__sig_rec_t **arr, size_t *n, ar__sig_rec_t *r)
{
    for (size_t i = 0; i < *n; i++) {
        if (arr[i] == r) {
            memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(ar__sig_rec_t *));
            (*n)--;
            return i;
        }
    }
    return SIZE_MAX;
}

void ar__sig_rec_set_area(ar__sig_srv_t *srv, ar__sig_rec_t *r, const char *clinic,
                          const char *area)
{
    ar__sig_area_t *old = r->q->in_area;
    if (old && strcmp(old->clinic, clinic) == 0 && strcmp(old->area, area) == 0)
        return;
    if (old) {
        size_t i = remove_keep_order(old->patients, &old->npatients, r);
        if (i != SIZE_MAX)
            ar__sig_snap_removed(srv, old, i); /* a snapshot's cursor moves past it */
        r->q->in_area = NULL;
        ar__sig_area_gc(srv, old);
    }
    ar__sig_recq_t *q = area[0] || clinic[0] ? ar__sig_rec_q(r) : r->q;
    if (!q)
        return;
    ar__sig_str_set(&q->area, area, AR_SIG_ID_MAX); /* "" on ar__sig_no_q writes nothing */
    if (clinic[0])
        ar__sig_str_set(&q->clinic, clinic, AR_SIG_ID_MAX);
    if (!area[0] || !clinic[0])
        return;
    ar__sig_area_t *na = ar__sig_area_get(srv, clinic, area);
    if (na && push(&na->patients, &na->npatients, &na->cap, r) == 0)
        q->in_area = na;
}

int ar__sig_area_sub(ar__sig_srv_t *srv, ar__sig_rec_t *r, ar__sig_area_t *a)
{
    (void)srv;
    for (size_t i = 0; i < a->nsubs; i++)
        if (a->subs[i] == r)
            return 0;
    return push(&a->subs, &a->nsubs, &a->subcap, r);
}

void ar__sig_area_unsub(ar__sig_srv_t *srv, ar__sig_rec_t *r, ar__sig_area_t *a)
{
    if (!a)
        return;
    ar__sig_snap_unsub(srv, r, a);
    (void)remove_keep_order(a->subs, &a->nsubs, r);
    ar__sig_area_gc(srv, a);
}
