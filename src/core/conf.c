/*
 * Configuration loading: one declarative table, four sources applied in order of precedence
 * (defaults < file < environment < flags). Every source goes through the same set_value()
 * so a value is validated identically wherever it comes from, and every error names where
 * the bad text came from.
 */
#include "anteroom/conf.h"

#include "anteroom/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

#define CONF_LINE_MAX 4096              /* longer file lines are an error, not silently cut */
#define CONF_FILE_MAX ((size_t)1 << 20) /* a configuration file is small; refuse anything huge */
#define CONF_LIST_MAX 1024              /* items per list option */
#define CONF_NAME_MAX 128               /* option and environment variable names */

/* Sources, in increasing precedence. Lists restart when a higher source first sets them. */
enum { SRC_DEFAULT = 0, SRC_FILE = 1, SRC_ENV = 2, SRC_FLAG = 3 };

typedef struct {
    const ar_conf_opt_t *opts;
    size_t nopts;
    void *target;
    int *src;  /* per option: the highest source that has set it so far */
    char *err; /* the caller's error buffer */
    size_t errlen;
} loader_t;

/* Where a value came from, for messages: "turn.conf:12", "ANTEROOM_TURN_X" or "--x". */
typedef struct {
    int kind;
    const char *file;
    unsigned line;
    const char *name; /* environment variable or flag text */
} where_t;

static void errf(loader_t *l, const where_t *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(loader_t *l, const where_t *w, const char *fmt, ...)
{
    if (l->err == NULL || l->errlen == 0)
        return;
    /* Started before any branch: clang's analyzer misreads a va_start placed after them. */
    va_list ap;
    va_start(ap, fmt);
    int n = 0;
    switch (w->kind) {
    case SRC_DEFAULT:
        n = snprintf(l->err, l->errlen, "default for '%s': ", w->name);
        break;
    case SRC_FILE:
        if (w->name != NULL)
            n = snprintf(l->err, l->errlen, "%s:%u: %s: ", w->file, w->line, w->name);
        else
            n = snprintf(l->err, l->errlen, "%s:%u: ", w->file, w->line);
        break;
    default:
        n = snprintf(l->err, l->errlen, "%s: ", w->name);
        break;
    }
    if (n >= 0 && (size_t)n < l->errlen)
        vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void *field(loader_t *l, const ar_conf_opt_t *o)
{
    return (char *)l->target + o->offset;
}

static const ar_conf_opt_t *find_opt(loader_t *l, const char *name, size_t len)
{
    for (size_t i = 0; i < l->nopts; i++) {
        if (strlen(l->opts[i].name) == len && memcmp(l->opts[i].name, name, len) == 0)
            return &l->opts[i];
    }
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return AR_ECONFIG;
}

/*
 * A decimal integer followed by an optional unit from `units`; the unit's multiplier scales
 * it. Overflow is an error rather than wrapping, so "9999999999G" cannot become a small size.
 */
typedef struct {
    const char *suffix;
    int64_t mult;
} unit_t;

static int parse_scaled(const char *v, const unit_t *units, size_t nunits, int allow_neg,
                        int64_t *out)
{
    const char *p = v;
    if (*p == '\0' || isspace((unsigned char)*p))
        return AR_ECONFIG;
    if (*p == '-' && !allow_neg)
        return AR_ECONFIG;
    if (*p == '+')
        return AR_ECONFIG;
    errno = 0;
    char *end;
    long long n = strtoll(p, &end, 10);
    if (end == p)
        return AR_ECONFIG;
    if (errno == ERANGE)
        return AR_ERANGE;
    int64_t mult = 1;
    if (*end != '\0') {
        size_t i;
        for (i = 0; i < nunits; i++) {
            if (strcasecmp(end, units[i].suffix) == 0)
                break;
        }
        if (i == nunits)
            return AR_ECONFIG;
        mult = units[i].mult;
    }
    int64_t r;
    if (__builtin_mul_overflow((int64_t)n, mult, &r))
        return AR_ERANGE;
    *out = r;
    return 0;
}

static const unit_t duration_units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
static const unit_t size_units[] = {
    {"k", INT64_C(1) << 10}, {"m", INT64_C(1) << 20}, {"g", INT64_C(1) << 30}, {"b", 1}};

static const char *type_name(ar_conf_type_t t)
{
    switch (t) {
    case AR_CONF_STR:
        return "string";
    case AR_CONF_INT:
        return "integer";
    case AR_CONF_BOOL:
        return "bool";
    case AR_CONF_DURATION:
        return "duration";
    case AR_CONF_SIZE:
        return "size";
    case AR_CONF_LIST:
        return "list";
    }
    return "?";
}

static void list_clear(ar_conf_list_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        ar_free(list->items[i]);
    ar_free(list->items);
    list->items = NULL;
    list->count = 0;
}

static int list_push(loader_t *l, const where_t *w, ar_conf_list_t *list, const char *v, size_t n)
{
    if (list->count >= CONF_LIST_MAX) {
        errf(l, w, "more than %d values", CONF_LIST_MAX);
        return AR_ETOOBIG;
    }
    char *copy = ar_strndup(v, n);
    if (copy == NULL)
        goto nomem;
    char **items = ar_realloc(list->items, (list->count + 1) * sizeof(char *));
    if (items == NULL) {
        ar_free(copy);
        goto nomem;
    }
    list->items = items;
    list->items[list->count++] = copy;
    return 0;
nomem:
    errf(l, w, "out of memory");
    return AR_ENOMEM;
}

/* Environment variables carry one string, so there a list is comma-separated. */
static int list_add(loader_t *l, const where_t *w, ar_conf_list_t *list, const char *v)
{
    if (w->kind != SRC_ENV && w->kind != SRC_DEFAULT)
        return list_push(l, w, list, v, strlen(v));
    while (*v != '\0') {
        const char *comma = strchr(v, ',');
        size_t n = comma ? (size_t)(comma - v) : strlen(v);
        if (n > 0) {
            int rc = list_push(l, w, list, v, n);
            if (rc < 0)
                return rc;
        }
        v += n + (comma ? 1 : 0);
    }
    return 0;
}

static int check_range(loader_t *l, const where_t *w, const ar_conf_opt_t *o, const char *v,
                       int64_t n)
{
    if (o->min == 0 && o->max == 0)
        return 0;
    /* Durations and sizes are stored in ms and bytes, so the limit says its unit. */
    const char *unit = o->type == AR_CONF_DURATION ? "ms" : o->type == AR_CONF_SIZE ? " bytes" : "";
    if (n < o->min) {
        errf(l, w, "%s is below %lld%s", v, (long long)o->min, unit);
        return AR_ERANGE;
    }
    if (n > o->max) {
        errf(l, w, "%s is above %lld%s", v, (long long)o->max, unit);
        return AR_ERANGE;
    }
    return 0;
}

/* Parses v for option o and stores it; `src` is the source's precedence (SRC_*). */
static int set_value(loader_t *l, const where_t *w, const ar_conf_opt_t *o, const char *v, int src)
{
    void *f = field(l, o);
    int rc;
    int64_t n = 0;
    switch (o->type) {
    case AR_CONF_STR: {
        char *copy = ar_strndup(v, strlen(v));
        if (copy == NULL) {
            errf(l, w, "out of memory");
            return AR_ENOMEM;
        }
        ar_free(*(char **)f);
        *(char **)f = copy;
        break;
    }
    case AR_CONF_BOOL: {
        int b;
        if (parse_bool(v, &b) < 0) {
            errf(l, w, "'%s' is not a boolean (true/false/yes/no/on/off/1/0)", v);
            return AR_ECONFIG;
        }
        *(int *)f = b;
        break;
    }
    case AR_CONF_INT:
    case AR_CONF_DURATION:
    case AR_CONF_SIZE:
        if (o->type == AR_CONF_INT)
            rc = parse_scaled(v, NULL, 0, 1, &n);
        else if (o->type == AR_CONF_DURATION)
            rc = parse_scaled(v, duration_units, 4, 0, &n);
        else
            rc = parse_scaled(v, size_units, 4, 0, &n);
        if (rc == AR_ERANGE) {
            errf(l, w, "%s is out of range", v);
            return rc;
        }
        if (rc < 0) {
            static const char *const hint[] = {"an integer", "a duration (500ms, 10s, 5m, 2h)",
                                               "a size (512, 64k, 10M, 1G)"};
            int h = o->type == AR_CONF_INT ? 0 : o->type == AR_CONF_DURATION ? 1 : 2;
            errf(l, w, "'%s' is not %s", v, hint[h]);
            return rc;
        }
        if (o->type == AR_CONF_DURATION && strpbrk(v, "smhSMH") == NULL &&
            __builtin_mul_overflow(n, (int64_t)1000, &n)) {
            errf(l, w, "%s is out of range", v);
            return AR_ERANGE;
        }
        rc = check_range(l, w, o, v, n);
        if (rc < 0)
            return rc;
        *(int64_t *)f = n;
        break;
    case AR_CONF_LIST: {
        ar_conf_list_t *list = f;
        int idx = (int)(o - l->opts);
        if (l->src[idx] < src)
            list_clear(list); /* the highest source that sets a list replaces lower ones */
        rc = list_add(l, w, list, v);
        if (rc < 0)
            return rc;
        break;
    }
    }
    l->src[o - l->opts] = src;
    return 0;
}

/* Every field starts empty so that ar_conf_free is safe whatever happens next. */
static void init_fields(const ar_conf_opt_t *opts, size_t nopts, void *target)
{
    for (size_t i = 0; i < nopts; i++) {
        const ar_conf_opt_t *o = &opts[i];
        void *f = (char *)target + o->offset;
        switch (o->type) {
        case AR_CONF_STR:
            *(char **)f = NULL;
            break;
        case AR_CONF_BOOL:
            *(int *)f = 0;
            break;
        case AR_CONF_LIST:
            ((ar_conf_list_t *)f)->items = NULL;
            ((ar_conf_list_t *)f)->count = 0;
            break;
        default:
            *(int64_t *)f = 0;
            break;
        }
    }
}

static int apply_defaults(loader_t *l)
{
    for (size_t i = 0; i < l->nopts; i++) {
        const ar_conf_opt_t *o = &l->opts[i];
        if (o->def == NULL)
            continue;
        where_t w = {.kind = SRC_DEFAULT, .name = o->name};
        int rc = set_value(l, &w, o, o->def, SRC_DEFAULT);
        if (rc < 0)
            return rc == AR_ENOMEM ? rc : AR_EINVAL; /* a bad default is a programming error */
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/*
 * One file line: `key=value`, `key value` or a bare `key`. A '#' at the start of the line or
 * after whitespace starts a comment; elsewhere it is part of the value (secrets may hold '#').
 */
static int file_line(loader_t *l, const char *path, unsigned lineno, char *line)
{
    where_t w = {.kind = SRC_FILE, .file = path, .line = lineno};
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
    }
    char *s = trim(line);
    if (*s == '\0')
        return 0;
    size_t klen = strcspn(s, "= \t");
    char *v = NULL;
    if (s[klen] != '\0') {
        v = s + klen;
        while (isspace((unsigned char)*v))
            v++;
        if (*v == '=')
            v++;
        v = trim(v);
        s[klen] = '\0';
        /* Allow `realm="example.org"`: quotes around a whole value are not part of it. */
        size_t vn = strlen(v);
        if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
            v[vn - 1] = '\0';
            v++;
        }
    }
    const ar_conf_opt_t *o = find_opt(l, s, klen);
    if (o == NULL) {
        errf(l, &w, "unknown key '%s'", s);
        return AR_EUNKNOWNKEY;
    }
    w.name = o->name;
    if (v == NULL) {
        if (o->type != AR_CONF_BOOL) {
            errf(l, &w, "needs a value");
            return AR_ECONFIG;
        }
        v = "true";
    }
    return set_value(l, &w, o, v, SRC_FILE);
}

static int load_file(loader_t *l, const char *path)
{
    where_t w = {.kind = SRC_FLAG, .name = path};
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        errf(l, &w, "cannot open configuration file: %s", strerror(errno));
        return AR_EIO;
    }
    char *line = ar_malloc(CONF_LINE_MAX + 2);
    if (line == NULL) {
        fclose(fp);
        errf(l, &w, "out of memory");
        return AR_ENOMEM;
    }
    unsigned lineno = 0;
    size_t total = 0;
    int rc = 0;
    while (fgets(line, CONF_LINE_MAX + 2, fp) != NULL) {
        lineno++;
        size_t n = strlen(line);
        total += n;
        where_t lw = {.kind = SRC_FILE, .file = path, .line = lineno};
        if (total > CONF_FILE_MAX) {
            errf(l, &lw, "file larger than %zu bytes", CONF_FILE_MAX);
            rc = AR_ETOOBIG;
            break;
        }
        /* fgets stops short of a newline only when the buffer is full or the file ends. */
        if (n > 0 && line[n - 1] != '\n' && !feof(fp)) {
            errf(l, &lw, "line longer than %d bytes", CONF_LINE_MAX);
            rc = AR_ETOOBIG;
            break;
        }
        rc = file_line(l, path, lineno, line);
        if (rc < 0)
            break;
    }
    if (rc == 0 && ferror(fp)) {
        errf(l, &w, "read error");
        rc = AR_EIO;
    }
    ar_free(line);
    fclose(fp);
    return rc;
}

/* PREFIX + name upper-cased with '-' as '_'; AR_ETOOBIG if it does not fit. */
static int env_name(const char *prefix, const char *name, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s%s", prefix, name);
    if (n < 0 || (size_t)n >= outlen)
        return AR_ETOOBIG;
    for (char *p = out + strlen(prefix); *p != '\0'; p++)
        *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    return 0;
}

/*
 * Every variable carrying the prefix must name an option (or CONFIG), so a typo such as
 * ANTEROOM_TURN_LISTEN_PORT is reported instead of being silently ignored.
 */
static int load_env(loader_t *l, const char *prefix)
{
    size_t plen = strlen(prefix);
    char config_name[CONF_NAME_MAX];
    if (env_name(prefix, "config", config_name, sizeof(config_name)) < 0)
        return AR_EINVAL;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, prefix, plen) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (eq == NULL)
            continue;
        size_t nlen = (size_t)(eq - *e);
        char var[CONF_NAME_MAX];
        where_t w = {.kind = SRC_ENV, .name = var};
        if (nlen >= sizeof(var)) {
            snprintf(var, sizeof(var), "%.*s", (int)(sizeof(var) - 1), *e);
            errf(l, &w, "unknown key");
            return AR_EUNKNOWNKEY;
        }
        memcpy(var, *e, nlen);
        var[nlen] = '\0';
        if (strcmp(var, config_name) == 0)
            continue;
        const ar_conf_opt_t *o = NULL;
        for (size_t i = 0; i < l->nopts && o == NULL; i++) {
            char want[CONF_NAME_MAX];
            if (env_name(prefix, l->opts[i].name, want, sizeof(want)) == 0 &&
                strcmp(want, var) == 0)
                o = &l->opts[i];
        }
        if (o == NULL) {
            errf(l, &w, "unknown key '%s'", var + plen);
            return AR_EUNKNOWNKEY;
        }
        int rc = set_value(l, &w, o, eq + 1, SRC_ENV);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int is_config_flag(const char *a)
{
    return strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0;
}

static int load_flags(loader_t *l, int argc, char **argv)
{
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        const char *a = argv[i];
        where_t w = {.kind = SRC_FLAG, .name = a};
        if (is_config_flag(a)) {
            i++; /* its value was used before the file was read */
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0)
            continue;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            errf(l, &w, "unexpected argument (options are --key=value)");
            return AR_ECONFIG;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const ar_conf_opt_t *o = find_opt(l, name, nlen);
        char flag[CONF_NAME_MAX];
        snprintf(flag, sizeof(flag), "--%.*s", (int)nlen, name);
        w.name = flag;
        if (o == NULL) {
            errf(l, &w, "unknown option");
            return AR_EUNKNOWNKEY;
        }
        const char *v;
        if (eq != NULL) {
            v = eq + 1;
        } else if (o->type == AR_CONF_BOOL) {
            v = "true"; /* `--flag` alone; `--flag=false` turns it off */
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            errf(l, &w, "needs a value");
            return AR_ECONFIG;
        }
        int rc = set_value(l, &w, o, v, SRC_FLAG);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Finds --help and the configuration file path before anything else is applied. */
static int scan_argv(loader_t *l, int argc, char **argv, const char **config)
{
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (is_config_flag(a)) {
            if (i + 1 >= argc) {
                where_t w = {.kind = SRC_FLAG, .name = a};
                errf(l, &w, "needs a value");
                return AR_ECONFIG;
            }
            *config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            *config = a + 9;
        }
    }
    return 0;
}

int ar_conf_load(const ar_conf_opt_t *opts, size_t nopts, void *target, const char *env_prefix,
                 int argc, char **argv, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    init_fields(opts, nopts, target);
    int *src = ar_calloc(nopts ? nopts : 1, sizeof(int));
    loader_t l = {opts, nopts, target, src, err, errlen};
    if (src == NULL) {
        where_t w = {.kind = SRC_FLAG, .name = "config"};
        errf(&l, &w, "out of memory");
        return AR_ENOMEM;
    }
    const char *config = NULL;
    int rc = apply_defaults(&l);
    if (rc == 0)
        rc = scan_argv(&l, argc, argv, &config);
    if (rc == 1) {
        ar_conf_print_help(opts, nopts, env_prefix);
    } else if (rc == 0) {
        char cfg_env[CONF_NAME_MAX];
        if (config == NULL && env_prefix != NULL &&
            env_name(env_prefix, "config", cfg_env, sizeof(cfg_env)) == 0)
            config = getenv(cfg_env);
        if (config != NULL && *config != '\0')
            rc = load_file(&l, config);
        if (rc == 0 && env_prefix != NULL)
            rc = load_env(&l, env_prefix);
        if (rc == 0)
            rc = load_flags(&l, argc, argv);
    }
    ar_free(src);
    /* On failure nothing half-loaded is handed back: the target holds no allocations. */
    if (rc < 0)
        ar_conf_free(opts, nopts, target);
    return rc;
}

void ar_conf_free(const ar_conf_opt_t *opts, size_t nopts, void *target)
{
    for (size_t i = 0; i < nopts; i++) {
        void *f = (char *)target + opts[i].offset;
        if (opts[i].type == AR_CONF_STR) {
            ar_free(*(char **)f);
            *(char **)f = NULL;
        } else if (opts[i].type == AR_CONF_LIST) {
            list_clear(f);
        }
    }
}

void ar_conf_print_help(const ar_conf_opt_t *opts, size_t nopts, const char *env_prefix)
{
    printf("Options (precedence: defaults < --config FILE < environment < flags):\n");
    printf("  --config, -c PATH  (configuration file: key=value lines, # comments)\n");
    for (size_t i = 0; i < nopts; i++) {
        const ar_conf_opt_t *o = &opts[i];
        printf("  --%s  (%s", o->name, type_name(o->type));
        if (o->def != NULL)
            printf(", default %s", o->def);
        if (o->min != 0 || o->max != 0)
            printf(", %lld..%lld", (long long)o->min, (long long)o->max);
        printf(")  %s\n", o->help ? o->help : "");
    }
    if (env_prefix != NULL)
        printf("Every option may also be set as %sNAME (upper case, '-' as '_'); lists there "
               "are comma-separated.\n",
               env_prefix);
}
