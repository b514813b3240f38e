/*
 * The asynchronous front. Our own threads rather than uv_queue_work: libuv's pool is shared with
 * file system and DNS work, has no per-thread state to hold a connection, and a slow query there
 * would stall unrelated work. Each worker owns one connection for its whole life, which is what
 * SQLite (NOMUTEX) and libpq (one thread per PGconn at a time) both want. Completions go back to
 * the loop through one uv_async_t, which coalesces wakeups, so the loop runs done callbacks in
 * batches in submission order per worker.
 */
#include "anteroom/alloc.h"
#include "internal.h"

#define POOL_THREADS_MAX 16

typedef struct job_s {
    struct job_s *next;
    ar_store_job_cb job;
    ar_store_done_cb done;
    void *arg;
    int status;
} job_t;

typedef struct worker_s {
    ar_store_pool_t *pool;
    ar_store_conn_t *conn;
    uv_thread_t tid;
} worker_t;

typedef struct list_s {
    job_t *head;
    job_t *tail;
} list_t;

struct ar_store_pool_s {
    uv_loop_t *loop;
    uv_async_t async;
    uv_mutex_t mu;
    uv_cond_t cv;
    list_t todo; /* guarded by mu */
    list_t done; /* guarded by mu */
    unsigned ntodo;
    unsigned queue_max;
    int stopping; /* guarded by mu: workers leave */
    int closed;   /* loop thread only: no more submissions */
    unsigned nthreads;
    worker_t workers[POOL_THREADS_MAX];
};

static void push(list_t *l, job_t *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    ar_store_pool_t *p = w->pool;
    uv_mutex_lock(&p->mu);
    for (;;) {
        while (p->todo.head == NULL && !p->stopping)
            uv_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break;
        job_t *j = p->todo.head;
        p->todo.head = j->next;
        if (p->todo.head == NULL)
            p->todo.tail = NULL;
        p->ntodo--;
        uv_mutex_unlock(&p->mu);
        j->status = j->job(w->conn, j->arg);
        uv_mutex_lock(&p->mu);
        push(&p->done, j);
        /* Safe from any thread; several sends before the loop wakes fold into one callback. */
        uv_async_send(&p->async);
    }
    uv_mutex_unlock(&p->mu);
}

/* Runs the done callbacks of everything finished so far, on the loop thread. */
static void drain(ar_store_pool_t *p)
{
    uv_mutex_lock(&p->mu);
    job_t *j = p->done.head;
    p->done.head = p->done.tail = NULL;
    uv_mutex_unlock(&p->mu);
    while (j != NULL) {
        job_t *next = j->next;
        j->done(j->status, j->arg);
        ar_free(j);
        j = next;
    }
}

static void async_cb(uv_async_t *h)
{
    drain(h->data);
}

/* Stops and joins the first `started` workers and closes every connection opened. */
static void stop_workers(ar_store_pool_t *p, unsigned started)
{
    uv_mutex_lock(&p->mu);
    p->stopping = 1;
    uv_cond_broadcast(&p->cv);
    uv_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < started; i++)
        uv_thread_join(&p->workers[i].tid);
    for (unsigned i = 0; i < p->nthreads; i++)
        ar_store_close(p->workers[i].conn);
}

static void destroy(ar_store_pool_t *p)
{
    uv_cond_destroy(&p->cv);
    uv_mutex_destroy(&p->mu);
    ar_free(p);
}

int ar_store_pool_open(uv_loop_t *loop, const ar_store_opts_t *opts, unsigned nthreads,
                       unsigned queue_max, ar_store_pool_t **out)
{
    if (loop == NULL || opts == NULL || out == NULL || nthreads < 1 || nthreads > POOL_THREADS_MAX)
        return AR_EINVAL;
    *out = NULL;
    ar_store_pool_t *p = ar_calloc(1, sizeof(*p));
    if (p == NULL)
        return AR_ENOMEM;
    if (uv_mutex_init(&p->mu) != 0) {
        ar_free(p);
        return AR_ESYS;
    }
    if (uv_cond_init(&p->cv) != 0) {
        uv_mutex_destroy(&p->mu);
        ar_free(p);
        return AR_ESYS;
    }
    p->loop = loop;
    p->queue_max = queue_max ? queue_max : 1024;
    int rc = 0;
    for (; p->nthreads < nthreads && rc == 0; p->nthreads++) {
        rc = ar_store_open(opts, &p->workers[p->nthreads].conn);
        if (rc < 0)
            break;
        p->workers[p->nthreads].pool = p;
    }
    unsigned started = 0;
    while (rc == 0 && started < p->nthreads) {
        if (uv_thread_create(&p->workers[started].tid, worker_main, &p->workers[started]) != 0)
            rc = AR_ESYS;
        else
            started++;
    }
    /* The async handle comes last: until it exists, failure can undo everything synchronously. */
    if (rc == 0 && uv_async_init(loop, &p->async, async_cb) != 0)
        rc = AR_ESYS;
    if (rc < 0) {
        stop_workers(p, started);
        destroy(p);
        return rc;
    }
    p->async.data = p;
    *out = p;
    return 0;
}

int ar_store_pool_submit(ar_store_pool_t *pool, ar_store_job_cb job, ar_store_done_cb done,
                         void *arg)
{
    if (pool == NULL || job == NULL || done == NULL)
        return AR_EINVAL;
    if (pool->closed)
        return AR_ESTATE;
    job_t *j = ar_malloc(sizeof(*j));
    if (j == NULL)
        return AR_ENOMEM;
    j->job = job;
    j->done = done;
    j->arg = arg;
    j->status = 0;
    uv_mutex_lock(&pool->mu);
    if (pool->ntodo >= pool->queue_max) {
        uv_mutex_unlock(&pool->mu);
        ar_free(j);
        return AR_EQUOTA;
    }
    push(&pool->todo, j);
    pool->ntodo++;
    uv_cond_signal(&pool->cv);
    uv_mutex_unlock(&pool->mu);
    return 0;
}

static void close_cb(uv_handle_t *h)
{
    ar_store_pool_t *p = h->data;
    /* Finished and cancelled jobs still owe their callbacks; run them now that nothing else can
     * touch the pool, then free it. */
    drain(p);
    destroy(p);
}

void ar_store_pool_close(ar_store_pool_t *pool)
{
    if (pool == NULL || pool->closed)
        return;
    pool->closed = 1;
    stop_workers(pool, pool->nthreads);
    /* Workers are gone: the lists are ours without the lock. Jobs that never started join the
     * finished ones, after them, with AR_ECLOSED. */
    for (job_t *j = pool->todo.head, *next; j != NULL; j = next) {
        next = j->next;
        j->status = AR_ECLOSED;
        push(&pool->done, j);
    }
    pool->todo.head = pool->todo.tail = NULL;
    pool->ntodo = 0;
    uv_close((uv_handle_t *)&pool->async, close_cb);
}
