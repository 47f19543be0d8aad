/* api/openapi.json as read-only bytes: openapi_json .. openapi_json_end. */
    .section .rodata
    .global openapi_json
    .global openapi_json_end
openapi_json:
    .incbin "api/openapi.json"
openapi_json_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
