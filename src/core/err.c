#include "anteroom/err.h"

const char *ar_strerror(int err)
{
    switch (err) {
    case AR_OK:
        return "success";
#define AR__ERR_MSG(name, num, msg)                                                                \
    case AR_##name:                                                                                \
        return msg;
        AR_ERR_MAP(AR__ERR_MSG)
#undef AR__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *ar_err_name(int err)
{
    switch (err) {
    case AR_OK:
        return "OK";
#define AR__ERR_NAME(name, num, msg)                                                               \
    case AR_##name:                                                                                \
        return #name;
        AR_ERR_MAP(AR__ERR_NAME)
#undef AR__ERR_NAME
    default:
        return "EUNKNOWN";
    }
}
