/* Error texts and the version: static strings, any thread. */
#include "klinefeed.h"

const char *kf_version(void)
{
    return KF_VERSION_STRING;
}

const char *kf_strerror(kf_err err)
{
    switch (err) {
    case KF_OK:
        return "success";
    case KF_ERR_INVALID_ARG:
        return "invalid argument";
    case KF_ERR_NOMEM:
        return "out of memory";
    case KF_ERR_CONFIG:
        return "bad configuration value";
    case KF_ERR_ALREADY_RUNNING:
        return "already running";
    case KF_ERR_NOT_RUNNING:
        return "not running";
    case KF_ERR_DNS:
        return "host name could not be resolved";
    case KF_ERR_CONNECT:
        return "connection refused or unreachable";
    case KF_ERR_TLS:
        return "TLS handshake or certificate verification failed";
    case KF_ERR_HANDSHAKE:
        return "WebSocket upgrade refused";
    case KF_ERR_TIMEOUT:
        return "timed out";
    case KF_ERR_SUBSCRIBE:
        return "subscription refused by the exchange";
    case KF_ERR_SYMBOL:
        return "symbol unknown or not trading";
    case KF_ERR_REST:
        return "REST request failed";
    case KF_ERR_SINK:
        return "sink could not be opened or written";
    case KF_ERR_NOT_FOUND:
        return "not found";
    case KF_ERR_IO:
        return "I/O error";
    case KF_ERR_PROTOCOL:
        return "protocol violation by the peer";
    case KF_ERR_THREAD:
        return "thread or event loop could not be created";
    case KF_ERR_PARSE:
        return "malformed input";
    }
    return "unknown error";
}
