/*
 * jsonr: a strict, small JSON reader for request bodies that are one
 * object of parameters ({"numbers": [1, 2], "mode": "threads"}).
 *
 * Why not jansson's tree: a tree of 1,000,000 integers costs about 48 MB
 * (a json_t per item plus the array's pointers), four times the body, and
 * a 16 MiB body of "0,0,0,..." would cost 8 million of them before any
 * bound could be checked. jsonr_scan() validates the whole text (RFC 8259:
 * strings with escapes and UTF-8, numbers, literals, nesting up to
 * JSONR_DEPTH_MAX) and records, per top-level member, only its key, its
 * type and where its value lies in the text; array members also get their
 * item count and whether every item has the same type. The caller then
 * walks a member's items in place (jsonr_next_item()) and converts only
 * what it keeps, so reading a body costs the body plus what is kept.
 *
 * A struct jsonr_doc points into the text it scanned, which must outlive
 * it. No allocation, no locks: any thread, one document per thread.
 */
#ifndef CONLAB_JSONR_H
#define CONLAB_JSONR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONR_MEMBERS_MAX 16 /* top-level members of one object */
#define JSONR_KEY_MAX     64 /* bytes of a key kept (longer ones cut) */
#define JSONR_DEPTH_MAX   32 /* nesting of arrays and objects */
#define JSONR_ERROR_MAX   160

enum jsonr_type {
    JSONR_NULL,
    JSONR_BOOL,
    JSONR_INTEGER, /* a number without fraction or exponent */
    JSONR_NUMBER,  /* any other number */
    JSONR_STRING,
    JSONR_ARRAY,
    JSONR_OBJECT,
};

/* "null", "boolean", "integer", "number", "string", "array", "object" */
extern const char *const jsonr_type_names[];

struct jsonr_member {
    char key[JSONR_KEY_MAX + 1]; /* decoded; cut to JSONR_KEY_MAX */
    enum jsonr_type type;
    size_t at, end; /* the value's text: [at, end) */
    /* JSONR_ARRAY: */
    size_t n_items;
    bool mixed;            /* an item's type differs from the first's */
    enum jsonr_type item;  /* the first item's type (when n_items > 0) */
    size_t first_other;    /* mixed: the index of the first that differs */
    enum jsonr_type other; /* mixed: its type */
    bool taken;            /* for the caller: member consumed */
};

struct jsonr_doc {
    const char *text;
    size_t len;
    size_t n;
    struct jsonr_member members[JSONR_MEMBERS_MAX];
};

/*
 * Scans text[0..len) as one JSON object. Returns 0 with doc filled;
 * -EINVAL for malformed JSON, or a top level that is not an object, with
 * "malformed JSON at byte B (line L, column C): what was expected" in
 * err; -E2BIG with a message when it has more than JSONR_MEMBERS_MAX
 * members.
 */
int jsonr_scan(struct jsonr_doc *doc, const char *text, size_t len, char *err,
               size_t err_len);

/* An iterator over the items of an array member. */
struct jsonr_iter {
    const struct jsonr_doc *doc;
    size_t pos, end;
};

void jsonr_iter_init(struct jsonr_iter *it, const struct jsonr_doc *doc,
                     const struct jsonr_member *m);

/*
 * The next item: its type and its text [*at, *at + *len) (a string with
 * its quotes). Returns true, or false past the last item.
 */
bool jsonr_next_item(struct jsonr_iter *it, enum jsonr_type *type,
                     const char **at, size_t *len);

/*
 * Converts an integer's text (as scanned) to int64; a value beyond the
 * range of int64 is clamped to INT64_MIN or INT64_MAX.
 */
int64_t jsonr_integer(const char *at, size_t len);

/*
 * Decodes a string's text (with its quotes, as scanned) into a new
 * NUL-terminated string the caller frees. NULL without memory, or with
 * errno EILSEQ when it holds a NUL character (\u0000).
 */
char *jsonr_string_dup(const char *at, size_t len);

#endif
