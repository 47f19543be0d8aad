/*
 * failopt: an LD_PRELOAD shim for the integration tests (loop.py builds it
 * at run time with cc -shared). It wraps curl_easy_setopt() and makes the
 * option whose number is in CONLAB_TEST_FAIL_CURLOPT fail with
 * CURLE_UNKNOWN_OPTION, without calling libcurl; every other option, and
 * every option when the variable is unset, goes to the real function.
 * This is how a test makes a safety option fail for real (as an older or
 * differently built libcurl would refuse it) and checks that the fetch
 * demo then refuses the transfer instead of running without the option.
 *
 * The argument is read as the option's type class dictates (curl.h:
 * CURLOPTTYPE_*): a long below 10000, a curl_off_t from 30000 to 39999,
 * else a pointer (objects, strings, functions, blobs), and forwarded as
 * that type. Any thread may call it: its state (the real function and the
 * option to fail) is set when the library is loaded.
 */
#define _GNU_SOURCE
/* The real prototype, not curl.h's type-checking macro of the same name. */
#define CURL_DISABLE_TYPECHECK
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>

#include <curl/curl.h>

#define FAIL_ENV "CONLAB_TEST_FAIL_CURLOPT"

typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);

static setopt_fn real_setopt;
static int failing_option = -1; /* none */

/* At load, before the service starts any thread. */
__attribute__((constructor)) static void failopt_init(void)
{
    const char *text = getenv(FAIL_ENV);
    char *end;
    real_setopt = (setopt_fn)dlsym(RTLD_NEXT, "curl_easy_setopt");
    if (!text || !text[0])
        return;
    long n = strtol(text, &end, 10);
    if (*end == '\0' && n >= 0 && n < 100000)
        failing_option = (int)n;
}

CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    setopt_fn real = real_setopt;
    va_list ap;
    CURLcode rc;

    if (!real)
        return CURLE_FAILED_INIT;
    if ((int)option == failing_option)
        return CURLE_UNKNOWN_OPTION;
    va_start(ap, option);
    if (option < CURLOPTTYPE_OBJECTPOINT) {
        long value = va_arg(ap, long);
        rc = real(curl, option, value);
    } else if (option >= CURLOPTTYPE_OFF_T && option < CURLOPTTYPE_BLOB) {
        curl_off_t value = va_arg(ap, curl_off_t);
        rc = real(curl, option, value);
    } else {
        void *value = va_arg(ap, void *);
        rc = real(curl, option, value);
    }
    va_end(ap);
    return rc;
}
