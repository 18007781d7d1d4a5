/* klinefeed: command dispatch, --help and --version. */
#include <string.h>

#include "args.h"
#include "cli.h"

void cli_usage(FILE *out)
{
    fputs(
        "Usage:\n"
        "  klinefeed run --symbols LIST --intervals LIST [options]\n"
        "  klinefeed [options]                  (run, when the first argument is a flag)\n"
        "  klinefeed backfill --symbols LIST --intervals LIST --from TIME [options]\n"
        "  klinefeed decode [FILE|-]            (default -, standard input)\n"
        "  klinefeed --help | -h | help\n"
        "  klinefeed --version | version\n"
        "\n"
        "run: collect Binance USDT-M Futures klines until SIGINT, SIGTERM or SIGHUP, then\n"
        "flush every closed candle to the sinks and exit (0: every closed candle stored).\n"
        "  --symbols LIST              comma-separated symbols, e.g. BTCUSDT,ETHUSDT (required,\n"
        "                              repeatable)\n"
        "  --intervals LIST            comma-separated intervals from 1m 3m 5m 15m 30m 1h 2h\n"
        "                              4h 6h 8h 12h 1d 3d 1w 1M (required, repeatable)\n"
        "  --sink SPEC                 sqlite:PATH | jsonl:PATH | jsonl:- (stdout) | csv:PATH;\n"
        "                              repeatable; default sqlite:klines.db\n"
        "  --all-updates               send every update to the sinks (upserted), not only\n"
        "                              closed candles\n"
        "  --testnet                   use the testnet endpoints\n"
        "  --ws-url URL                WebSocket base (ws:// or wss://, e.g.\n"
        "                              wss://fstream.binance.com/market)\n"
        "  --rest-url URL              REST base (http:// or https://)\n"
        "  --validate MODE             check symbols against exchangeInfo: if-reachable\n"
        "                              (default) | required | off\n"
        "  --streams-per-connection N  streams per WebSocket connection, 1..1024 (default 1024)\n"
        "  --connect-timeout-ms N      connect/handshake/ack timeout (default 10000)\n"
        "  --ca-file PATH              CA bundle instead of the system store\n"
        "  --ring-size N               recent candles kept per stream (default 1000)\n"
        "  --ping-interval-ms N        our WebSocket ping period (default 20000)\n"
        "  --liveness-timeout-ms N     no frame for this long = dead, replaced (default 30000)\n"
        "  --reconnect-initial-ms N    first reconnect within N ms (default 1000)\n"
        "  --reconnect-max-ms N        backoff cap (default 30000)\n"
        "  --max-connection-age-ms N   rotate connections at this age, make-before-break\n"
        "                              (default 85800000 = 23 h 50 min)\n"
        "  --backfill-from TIME        first run: also fetch closed candles from TIME on\n"
        "                              (later runs resume after the store's newest candle)\n"
        "  --no-backfill               never ask REST for missed candles\n"
        "  --rest-weight-budget N      REST weight per UTC minute (default 2400)\n"
        "  --retry-start               keep retrying a start that fails on the network (DNS,\n"
        "                              connect, upgrade, timeout, REST) with backoff, for a\n"
        "                              service that starts before the network (default: exit 1)\n"
        "  --state-dir DIR|none        where REST pauses the exchange imposed are kept for the\n"
        "                              next process (default $STATE_DIRECTORY, else\n"
        "                              $XDG_STATE_HOME/klinefeed, else ~/.local/state/klinefeed)\n"
        "  --sink-queue N              rows held per sink while it is slow or down (default\n"
        "                              65536, 224 bytes each); what does not fit is fetched\n"
        "                              again from REST once the sink takes rows\n"
        "  --log-level LEVEL           debug | info (default) | warn | error | off\n"
        "  Flags take their value as \"--flag value\" or \"--flag=value\".\n"
        "  Credentials (optional, market streams do not need them) are read only from the\n"
        "  environment variables BINANCE_API_KEY and BINANCE_API_SECRET; they are never\n"
        "  printed.\n"
        "\n"
        "backfill: download closed candles from REST into the sinks within the exchange's\n"
        "request-weight budget, then exit 0. Resumes after the newest candle a sink holds\n"
        "(sqlite), so a second run fetches only what is new. SIGINT/SIGTERM: stop after the\n"
        "current request, store what was fetched, exit 0.\n"
        "  --symbols LIST, --intervals LIST, --sink SPEC, --testnet, --rest-url URL,\n"
        "  --ca-file PATH, --log-level LEVEL   as for run\n"
        "  --from TIME                 first open time (required): unix ms, or UTC\n"
        "                              2026-01-01, 2026-01-01T12:00, 2026-01-01T12:00:00Z\n"
        "  --to TIME                   last open time (default: now)\n"
        "  --weight-budget N           REST weight per UTC minute (default 2400; the\n"
        "                              exchange's published limit wins when lower)\n"
        "  --state-dir DIR|none        as for run (a pause imposed on run is honoured here)\n"
        "\n"
        "decode: read captured frames, one per line (a raw event, a combined\n"
        "{\"stream\":...,\"data\":...} wrapper, or \"<unix time>: <frame>\"), write one JSON\n"
        "object per kline to stdout, then \"decoded=N skipped=N malformed=N\" to stderr.\n"
        "Lines longer than 16 MiB are counted malformed.\n"
        "\n"
        "Logs go to stderr, one line per event: \"<UTC time> level=info msg=... key=value\".\n"
        "\n"
        "Exit codes:\n"
        "  0  success; run stopped cleanly by SIGINT/SIGTERM/SIGHUP, every closed candle\n"
        "     it knew of stored\n"
        "  1  runtime failure: start failed (connection, symbol validation, sink), a stop\n"
        "     or backfill that could not fetch or flush (unknown symbol, REST error),\n"
        "     that could not flush, or an output write error\n"
        "  2  usage error: unknown command or flag, bad or missing value\n"
        "  3  decode input unreadable (file not found, read error)\n"
        "  4  run stopped, but closed candles are not stored yet: known missing (REST had\n"
        "     not delivered them) or not taken by a store before the stop deadline; the\n"
        "     next start finds them in the store and fetches them\n",
        out);
}

static int print_version(void)
{
    printf("klinefeed %s\n", kf_version());
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
}

static int print_help(void)
{
    cli_usage(stdout);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_error("no command given (try \"klinefeed --help\")");
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return print_help();
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0)
        return print_version();
    if (strcmp(cmd, "run") == 0)
        return cli_run(argc - 2, argv + 2);
    if (strcmp(cmd, "decode") == 0)
        return cli_decode(argc - 2, argv + 2);
    if (strcmp(cmd, "backfill") == 0)
        return cli_backfill(argc - 2, argv + 2);
    if (cmd[0] == '-')
        return cli_run(argc - 1, argv + 1);
    cli_error("unknown command \"%s\" (commands: run, backfill, decode, help, version)", cmd);
    return CLI_EXIT_USAGE;
}
