/* tls_certs.c - a throw-away CA and server certificates for the TLS tests, made with the
 * `openssl` command (see tls_certs.h). */
#include "tls_certs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One openssl command (args NULL-terminated, without "openssl"), its output appended to log.
 * true when it exited 0; otherwise the log is printed. */
static bool run_openssl(const char *log, const char *a0, ...)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = "openssl";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 39; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "kft_tls_make: fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp("openssl", (char *const *)argv);
        dprintf(2, "exec openssl: %s (scripts/setup.sh installs it)\n", strerror(errno));
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return true;
    fprintf(stderr, "kft_tls_make: openssl %s failed; its output (%s):\n", a0, log);
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
    return false;
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kft_tls_make: %s: %s\n", path, strerror(errno));
        return false;
    }
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* now + days, as openssl ca's -startdate/-enddate want it: YYYYMMDDHHMMSSZ */
static void asn1_date(int days, char *out, size_t cap)
{
    time_t t = time(NULL) + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y%m%d%H%M%SZ", &tm);
}

bool kft_tls_make(const char *dir, kft_tls *out)
{
    char cnf[600], log[600], csr[600], okey[600], cakey[600], index[600], serial[600];
    snprintf(cnf, sizeof cnf, "%s/openssl.cnf", dir);
    snprintf(log, sizeof log, "%s/openssl.log", dir);
    snprintf(csr, sizeof csr, "%s/localhost.csr", dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", dir);
    snprintf(okey, sizeof okey, "%s/other-ca.key", dir);
    snprintf(index, sizeof index, "%s/index.txt", dir);
    snprintf(serial, sizeof serial, "%s/serial", dir);
    snprintf(out->ca, sizeof out->ca, "%s/ca.pem", dir);
    snprintf(out->other_ca, sizeof out->other_ca, "%s/other-ca.pem", dir);
    snprintf(out->cert, sizeof out->cert, "%s/localhost.pem", dir);
    snprintf(out->key, sizeof out->key, "%s/localhost.key", dir);
    snprintf(out->expired, sizeof out->expired, "%s/expired.pem", dir);

    /* Our own configuration, not the system's openssl.cnf: the extensions are exactly these.
     * [ca] serves `openssl ca`, the one command that sets a certificate's dates in the past. */
    char text[2048];
    snprintf(text, sizeof text,
             "[req]\n"
             "distinguished_name = dn\n"
             "prompt = no\n"
             "[dn]\n"
             "CN = unused\n"
             "[ca_ext]\n"
             "basicConstraints = critical,CA:TRUE\n"
             "keyUsage = critical,keyCertSign,cRLSign\n"
             "subjectKeyIdentifier = hash\n"
             "[leaf]\n"
             "subjectAltName = DNS:localhost\n"
             "basicConstraints = critical,CA:FALSE\n"
             "keyUsage = critical,digitalSignature\n"
             "extendedKeyUsage = serverAuth\n"
             "subjectKeyIdentifier = hash\n"
             "authorityKeyIdentifier = keyid\n"
             "[ca]\n"
             "default_ca = test_ca\n"
             "[test_ca]\n"
             "database = %s\n"
             "new_certs_dir = %s\n"
             "serial = %s\n"
             "default_md = sha256\n"
             "policy = any\n"
             "x509_extensions = leaf\n"
             "copy_extensions = none\n"
             "unique_subject = no\n"
             "[any]\n"
             "commonName = supplied\n",
             index, dir, serial);
    if (!write_file(cnf, text) || !write_file(index, "") || !write_file(serial, "1000\n"))
        return false;

    char from[32], to[32];
    asn1_date(-10, from, sizeof from);
    asn1_date(-1, to, sizeof to);
    /* P-256 keys: made at once (RSA keys take a visible fraction of a second each) */
    return run_openssl(log, "req", "-config", cnf, "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", cakey, "-out", out->ca,
                       "-days", "2", "-subj", "/CN=klinefeed test CA", "-extensions", "ca_ext",
                       NULL) &&
           run_openssl(log, "req", "-config", cnf, "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", okey, "-out",
                       out->other_ca, "-days", "2", "-subj", "/CN=klinefeed unrelated CA",
                       "-extensions", "ca_ext", NULL) &&
           run_openssl(log, "req", "-config", cnf, "-new", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", out->key, "-out", csr,
                       "-subj", "/CN=localhost", NULL) &&
           run_openssl(log, "x509", "-req", "-in", csr, "-CA", out->ca, "-CAkey", cakey,
                       "-set_serial", "2", "-days", "2", "-extfile", cnf, "-extensions", "leaf",
                       "-out", out->cert, NULL) &&
           run_openssl(log, "ca", "-batch", "-notext", "-config", cnf, "-cert", out->ca, "-keyfile",
                       cakey, "-in", csr, "-out", out->expired, "-startdate", from, "-enddate", to,
                       NULL);
}
