/*
 * openapi_init: builds the served OpenAPI document from the registry.
 *
 * Apart from openapi.c so that a program that links openapi_build() (its
 * unit test, with a registry of its own) does not have to link the real
 * registry and every demo with it. Start-up thread only.
 */
#include "demo.h"
#include "openapi.h"

int openapi_init(char *err, size_t err_len)
{
    return openapi_load(demo_registry, demo_count, err, err_len);
}
