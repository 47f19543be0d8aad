/*
 * params: the one strict query-string parser every handler uses.
 *
 * params_parse() splits and percent-decodes a raw query string; the typed
 * getters then take the keys an endpoint accepts, each checking its value
 * strictly (integers without trailing garbage or overflow, inclusive ranges,
 * enumerations, comma lists, repeated keys), and params_finish() rejects
 * whatever key no getter asked for. The first failure leaves a message in
 * the object that names the parameter and what is accepted; the handler
 * answers it as a 400.
 *
 * A struct params is owned by one thread at a time; it holds no locks.
 */
#ifndef CONLAB_PARAMS_H
#define CONLAB_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARAMS_MAX       128   /* key=value pairs in one query */
#define PARAMS_QUERY_MAX 32768 /* bytes of raw query string */
#define PARAMS_ERROR_MAX 320   /* bytes of one error message */
#define PARAMS_NAMES_MAX 16    /* keys one endpoint may accept */

struct param {
    const char *key;   /* decoded, NUL-free */
    const char *value; /* decoded, NUL-free; "" for "key" or "key=" */
    bool taken;
};

struct params {
    char *storage; /* decoded keys and values; owned */
    size_t n;
    struct param items[PARAMS_MAX];
    size_t n_names; /* keys asked for so far, for params_finish() */
    const char *names[PARAMS_NAMES_MAX];
    bool failed;
    char error[PARAMS_ERROR_MAX];
};

/*
 * Parses query (the text after '?', without it; NULL or "" for none) into
 * *p. '&' separates pairs and empty pairs are skipped; the first '='
 * separates key and value; both are percent-decoded with '+' as space.
 *
 * Returns 0, -EINVAL (malformed: bad escape, NUL byte, empty key, too many
 * pairs, too long; see params_error()) or -ENOMEM. Call params_cleanup()
 * in every case.
 */
int params_parse(struct params *p, const char *query);

/* Frees what params_parse() allocated. Safe on a zeroed struct. */
void params_cleanup(struct params *p);

/* The message of the first failure, or "" when nothing failed. */
const char *params_error(const struct params *p);

/*
 * Takes the integer parameter name: absent gives def; present must be a
 * decimal integer ("-" allowed, nothing else) within [min, max] and given
 * once. Returns 0, or -EINVAL with the message set.
 */
int params_int(struct params *p, const char *name, int64_t min, int64_t max,
               int64_t def, int64_t *out);

/*
 * Takes the real-number parameter name: absent gives def; present must be
 * a decimal number (digits with an optional '-', fraction and exponent, as
 * JSON writes them: no hex, inf or nan; at most 63 characters) within
 * [min, max] and given once.
 * Returns 0, or -EINVAL with the message set.
 */
int params_real(struct params *p, const char *name, double min, double max,
                double def, double *out);

/*
 * Takes an enumeration: the value must equal one of choices[0..n-1]; *out is
 * its index, def when absent. Returns 0 or -EINVAL.
 */
int params_enum(struct params *p, const char *name, const char *const choices[],
                size_t n_choices, int def, int *out);

/*
 * Takes a comma list of integers, each within [min, max], 1..max_items of
 * them, given once. Absent gives the list def (a comma list too). On
 * success *take_out is a new array of *n_out values, owned by the caller
 * (free()). Returns 0, -EINVAL or -ENOMEM.
 */
int params_int_list(struct params *p, const char *name, int64_t min,
                    int64_t max, size_t max_items, const char *def,
                    int64_t **take_out, size_t *n_out);

/*
 * Takes every value of a repeatable key, in order, into out[0..max_items):
 * pointers into *p, valid until params_cleanup(). *n_out is 0 when absent.
 * Returns 0, or -EINVAL when there are more than max_items or one is empty.
 */
int params_strings(struct params *p, const char *name, size_t max_items,
                   const char *out[], size_t *n_out);

/* True when name appears in the query (whether taken or not). */
bool params_has(const struct params *p, const char *name);

/*
 * Ends the checks: returns -EINVAL if an earlier getter failed (its message
 * stays) or if a key was given that no getter took ("unknown parameter"
 * with the accepted names); else 0.
 */
int params_finish(struct params *p);

/*
 * The checks behind the getters, for values that come from elsewhere (a
 * JSON request body): the same bounds and the same messages. Each returns
 * 0, or -EINVAL with the message set (the first failure's stays).
 */

/* text[0..len) must be a decimal integer in [min, max] (params_int). */
int params_check_int(struct params *p, const char *name, const char *text,
                     size_t len, int64_t min, int64_t max, int64_t *out);

/* text[0..len) must be a decimal number in [min, max] (params_real). */
int params_check_real(struct params *p, const char *name, const char *text,
                      size_t len, double min, double max, double *out);

/* value must be one of choices[] (params_enum); *out its index. */
int params_check_enum(struct params *p, const char *name, const char *value,
                      const char *const choices[], size_t n_choices, int *out);

/* Fails: a list of count items where max_items are accepted. */
int params_check_count(struct params *p, const char *name, size_t count,
                       size_t max_items);

/* Item index (from 0) of a list: an integer in [min, max]. */
int params_check_item(struct params *p, const char *name, size_t index,
                      const char *text, size_t len, int64_t min, int64_t max,
                      size_t max_items, int64_t *out);

/* Fails with a message of its own (printf format). */
int params_fail(struct params *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Names an accepted key, for the "accepted: ..." of params_unknown(). */
void params_expect(struct params *p, const char *name);

/* Fails: key is not accepted (the message lists the expected names). */
int params_unknown(struct params *p, const char *key);

#endif
