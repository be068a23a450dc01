/* config.h: the configuration engine: sections of settings that modules declare as tables,
 * read from YAML, overridden by the environment, validated, printed and freed here.
 *
 * A module owns its sections: a struct of values in its <module>_config.h, and in its
 * <module>_config.c a table of me_setting_t (one line a setting) and an me_config_section_t
 * with optional hooks. server/config_sections.c lists every section, in the order the file
 * and `mediaedge check-config` show them; this engine knows no section by name. A module
 * reads its values through a typed accessor next to its struct:
 *
 *     extern const me_config_section_t me_photo_config_section;
 *     static inline const me_photo_settings_t *me_photo_settings(const me_config_t *cfg)
 *     {
 *         return me_config_section(cfg, &me_photo_config_section);
 *     }
 */
#ifndef ME_CONFIG_H
#define ME_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "server/core/error.h"

#define ME_CONFIG_DEFAULT_PATH "conf/mediaedge.yaml"

#define ME_KIB 1024ull /* for the tables' sizes */
#define ME_MIB (1024 * ME_KIB)
#define ME_GIB (1024 * ME_MIB)

typedef enum { ME_ROLE_ALL, ME_ROLE_API, ME_ROLE_WORKER } me_role_t;

typedef struct me_config_store me_config_store_t;

/* A configuration. The values of settings live in their sections (me_config_section());
 * what every module may need is here. Owned strings are freed by me_config_free(). */
typedef struct {
    char *path;           /* the file it was read from, or NULL */
    me_role_t role;       /* server.role: a setting kept here because every module asks */

    /* derived by me_config_resolve() (not settings) */
    uint64_t memory_limit; /* bytes: cgroup memory.max or physical memory */
    int cpu_limit;         /* cgroup cpu.max rounded up, or online CPUs */

    me_config_store_t *store; /* private to config.c: the sections' values */
} me_config_t;

/* The C type of a setting's field, and how its text is read:
 *   STRING    char *; with choices it must be one of them (stored as the table spells it)
 *   SECRET    char *; never printed, and may be given as a file: "<key>_file" in the YAML,
 *             MEDIAEDGE_<SECTION>_<KEY>_FILE in the environment
 *   LIST      char *, the items joined as "a,b,c" (me_config_list_next() steps through them);
 *             a YAML sequence or one comma-separated string; valid() vets each item and max
 *             caps their number
 *   BOOL      int, 0 or 1: true/false, yes/no, on/off
 *   INT       int, within [min, max] (every INT has a range)
 *   SIZE      uint64_t bytes: "16MiB", "512k", "1024"
 *   DURATION  uint64_t milliseconds: "250ms", "30s", "2m", "1h", "30" (seconds)
 *   ENUM      an int or an enum: the index of the value in choices */
typedef enum {
    ME_SETTING_STRING,
    ME_SETTING_SECRET,
    ME_SETTING_LIST,
    ME_SETTING_BOOL,
    ME_SETTING_INT,
    ME_SETTING_SIZE,
    ME_SETTING_DURATION,
    ME_SETTING_ENUM,
} me_setting_type_t;

enum {
    ME_SETTING_AUTO = 1, /* 0 means "derive it": the section's resolve hook fills it in */
    ME_SETTING_CORE = 2, /* the field is in me_config_t, not in the section's struct */
};

/* One setting of a section. def is parsed like a value from the file, except that strings
 * point at it (never freed). When max != 0 a number must lie in [min, max]. valid() vets
 * other strings (each item of a list); form says what it wants, for errors. */
typedef struct {
    const char *key;
    me_setting_type_t type;
    size_t offset; /* of the field in the section's struct (in me_config_t with ME_SETTING_CORE) */
    const char *def;
    unsigned flags;
    int64_t min, max;
    const char *const *choices; /* NULL-terminated */
    int (*valid)(const char *value);
    const char *form;
} me_setting_t;

/* 1 when field (of struct T) has the C type a setting of kind is stored in. */
#define ME_SETTING_FITS(T, field, kind)                                                              \
    ((kind) <= ME_SETTING_LIST ? __builtin_types_compatible_p(__typeof__(((T *)0)->field), char *)    \
     : (kind) == ME_SETTING_SIZE || (kind) == ME_SETTING_DURATION                                      \
         ? __builtin_types_compatible_p(__typeof__(((T *)0)->field), uint64_t)                         \
         : sizeof(((T *)0)->field) == sizeof(int))

/* A line of a section's table: key, kind (ME_SETTING_*), the field of T that holds it, the
 * default as text, then any of .flags, .min, .max, .choices, .valid, .form. A field whose
 * type does not fit kind stops the build (a negative array size). */
#define ME_SETTING(T, name, kind, field, value, ...)                                                 \
    {.key = (name), .type = (kind),                                                                   \
     .offset = offsetof(T, field) + 0 * sizeof(char[ME_SETTING_FITS(T, field, kind) ? 1 : -1]),       \
     .def = (value), __VA_ARGS__}

/* .settings and .nsettings of a section, from its table (an array). */
#define ME_CONFIG_TABLE(t) .settings = (t), .nsettings = sizeof(t) / sizeof((t)[0])

/* Where a section's check hook reports what is wrong: see me_config_reject(). */
typedef struct me_config_check me_config_check_t;

/* How grave a development default left in production is; the gravest is reported first. */
typedef enum {
    ME_RISK_KEY,       /* a known or weak key: anyone could forge what it signs */
    ME_RISK_TRANSPORT, /* traffic that others could read or fake on the way */
    ME_RISK_EXPOSURE,  /* a development convenience left reachable */
} me_config_risk_t;

/* A development default refused in production, as "<setting>: <what> not allowed in
 * production (<profile>)<unless>; <fix>". Static strings. */
typedef struct {
    me_config_risk_t risk;
    const char *setting; /* "tokens.hs256_secret" */
    const char *what;    /* "the development key is" */
    const char *unless;  /* "" or " unless ..." */
    const char *fix;     /* "set MEDIAEDGE_TOKENS_HS256_SECRET_FILE" */
} me_config_refusal_t;

/* A section: the YAML mapping `name:` and the MEDIAEDGE_<NAME>_* variables. Its values are
 * a struct of size bytes that the engine allocates per configuration (zeroed, then the
 * defaults). Every hook is optional and gets the section's values. */
typedef struct me_config_section {
    const char *name;
    size_t size;
    const me_setting_t *settings;
    size_t nsettings;
    /* Rules that span settings, run after every value was read (each setting's own form was
     * checked as it was read), in section order. Returns 0, or me_config_reject()'s result. */
    int (*check)(const me_config_t *cfg, const void *values, me_config_check_t *ck);
    /* Whether these values make the deployment a production one (me_config_is_production):
     * 1 with profile set to why ("storage.backend is s3"), or 0. */
    int (*profile)(const void *values, char *profile, size_t len);
    /* In production: 1 with *r set to the gravest development default these values leave in
     * place, or 0. */
    int (*refuse_in_production)(const me_config_t *cfg, const void *values, me_config_refusal_t *r);
    /* Fills this section's auto settings from cfg->cpu_limit and cfg->memory_limit with
     * me_config_auto(). */
    void (*resolve)(me_config_t *cfg, void *values);
} me_config_section_t;

/* Every section, NULL-terminated, in the order they print: defined in server/config_sections.c. */
extern const me_config_section_t *const me_config_sections[];

/* The values of sec in cfg: sec's struct, owned by cfg, valid until me_config_free(cfg).
 * NULL when sec is not one of cfg's sections (or cfg holds none: after me_config_free()). */
const void *me_config_section(const me_config_t *cfg, const me_config_section_t *sec);

/* The same, writable: for tests that set values by hand. A string put there stays the
 * caller's: me_config_free() frees only the strings the engine made. */
void *me_config_section_mut(me_config_t *cfg, const me_config_section_t *sec);

/* For check hooks: refuses the configuration with "<origin>: <message>", origin being where
 * the setting at field (a member of one of cfg's section structs, or of cfg) got its value:
 * "file:line", the environment variable, or the file when it kept its default. Returns
 * ME_ECONFIG, for the hook to return. */
int me_config_reject(me_config_check_t *ck, const void *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))) ME_MUST_CHECK;

/* For resolve hooks: sets the auto setting at field (a member of one of cfg's section
 * structs) to v, capped at its maximum, unless it holds a value already (not 0); the
 * printed configuration marks it "# auto". */
void me_config_auto(me_config_t *cfg, void *field, uint64_t v);

/* Wipes sec's secrets from cfg and from memory; they become "". For a process that must not
 * hold them: the worker role checks no tokens and decodes untrusted files. */
void me_config_forget_secrets(me_config_t *cfg, const me_config_section_t *sec);

/* Fills cfg with the defaults of every section. Returns 0, or ME_ENOMEM with cfg holding
 * nothing (me_config_free() is still safe). */
int me_config_defaults(me_config_t *cfg) ME_MUST_CHECK;

/* Reads the YAML file at path over the defaults, then applies MEDIAEDGE_<SECTION>_<KEY>
 * variables from envp (NULL-terminated "NAME=value" strings; NULL for none), reads secrets
 * given as files (<key>_file), and validates. path may be NULL (defaults and environment
 * only); a missing file at path is an error.
 * On error ME_ECONFIG is returned, err (of errlen bytes) holds "file:line: what is wrong"
 * (or "MEDIAEDGE_X: what is wrong" for the environment), and cfg holds partial values that
 * the caller must still release with me_config_free(). */
int me_config_load(me_config_t *cfg, const char *path, char *const *envp, char *err,
                   size_t errlen) ME_MUST_CHECK;

/* Fills the auto (0) values from the machine's limits (me_cgroup_*); idempotent. */
void me_config_resolve(me_config_t *cfg);

/* The production profile is whatever a section's profile hook says (any non-file storage).
 * Returns 0 when cfg may run, or ME_ECONFIG with err naming the gravest development default
 * left in place (the first one, in section order, among equally grave ones). */
int me_config_check_production(const me_config_t *cfg, char *err, size_t errlen) ME_MUST_CHECK;

/* 1 when cfg runs with production rules. */
int me_config_is_production(const me_config_t *cfg);

/* Writes the effective configuration as YAML to out, section by section, secrets replaced
 * by "<redacted>". */
void me_config_print(const me_config_t *cfg, FILE *out);

/* Frees what cfg owns and empties it; cfg may then be loaded again, or freed again. A copy
 * of a me_config_t shares its sections: free only one of them. */
void me_config_free(me_config_t *cfg);

/* Steps through a list: a list setting's value ("a,b,c") or any comma-separated text, blanks
 * around items ignored, empty items skipped. Returns 1 with *item and *len (not
 * NUL-terminated) set to the next item after *p and *p moved past it, or 0 at the end. */
int me_config_list_next(const char **p, const char **item, size_t *len);

/* Parses "16MiB", "512k", "1G", "1024" into bytes. Returns 0 or ME_EINVAL. */
int me_config_parse_size(const char *s, uint64_t *out) ME_MUST_CHECK;

/* Parses "250ms", "5s", "2m", "1h", "30" (seconds) into milliseconds. Returns 0 or ME_EINVAL. */
int me_config_parse_duration(const char *s, uint64_t *out) ME_MUST_CHECK;

/* Parses digits alone ("8080") into a number. Returns 0 or ME_EINVAL (also on overflow). */
int me_config_parse_uint(const char *s, uint64_t *out) ME_MUST_CHECK;

#endif
