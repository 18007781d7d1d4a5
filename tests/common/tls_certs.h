/* tls_certs.h - test helper: a throw-away certificate authority and server certificates made
 * at run time with the `openssl` command (scripts/setup.sh installs it). Nothing is committed
 * to the repository and nothing goes near the system trust store. */
#ifndef KF_TEST_TLS_CERTS_H
#define KF_TEST_TLS_CERTS_H

#include <stdbool.h>

typedef struct kft_tls {
    char ca[600];       /* the CA certificate (PEM) that signed cert and expired */
    char other_ca[600]; /* an unrelated CA: it signed nothing the simulator serves */
    char cert[600];     /* localhost server certificate, subjectAltName DNS:localhost only,
                           valid from now for 2 days, signed by ca */
    char key[600];      /* its private key (P-256), also the key of expired */
    char expired[600];  /* the same name and key, signed by ca, valid from 10 days ago to
                           1 day ago */
} kft_tls;

/* Writes ca.pem, other-ca.pem, localhost.pem, localhost.key and expired.pem (and the files
 * openssl needs on the way) into the existing directory dir, and their paths into *out.
 * false, with openssl's output on stderr, when a command failed. The caller removes dir. */
bool kft_tls_make(const char *dir, kft_tls *out);

#endif
