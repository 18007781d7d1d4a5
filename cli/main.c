/* klinefeed: command dispatch, --help and --version. */
#include <string.h>

#include "args.h"
#include "cli.h"

void cli_usage(FILE *out)
{
    fputs("Usage:\n"
          "  klinefeed run --symbols LIST --intervals LIST [options]   collect (the daemon)\n"
          "  klinefeed backfill --symbols LIST --intervals LIST --from TIME [options]\n"
          "                                                            download history\n"
          "  klinefeed decode [FILE|-]                                 captured frames to JSON\n"
          "  klinefeed help [COMMAND] | COMMAND --help                 this, or a command's\n"
          "  klinefeed --version\n\n",
          out);
    const cli_command *cmds[] = {&cli_cmd_run, &cli_cmd_backfill, &cli_cmd_decode};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        fprintf(out, "---- %s ----\n", cmds[i]->name);
        cli_command_help(cmds[i], out);
        fputs("\n", out);
    }
    fputs("Logs go to stderr, one line per event: \"<UTC time> level=info msg=... key=value\".\n"
          "Credentials (optional: market streams need none) are read only from the environment\n"
          "variables BINANCE_API_KEY and BINANCE_API_SECRET, and are never printed.\n"
          "\n"
          "Exit codes:\n"
          "  0  success: run stopped by SIGINT/SIGTERM/SIGHUP with every closed candle it knew\n"
          "     of stored; backfill done or interrupted (what was fetched is stored)\n"
          "  1  runtime failure: run could not start (connection, TLS, symbols, store);\n"
          "     backfill failed (unknown symbol, REST, store); an output write failed\n"
          "  2  usage error: unknown command or flag, bad or missing value\n"
          "  3  decode input unreadable (file not found, read error)\n"
          "  4  run stopped, but closed candles are not stored yet (known missing, or not\n"
          "     taken by a store before the stop deadline): the next start fetches them\n",
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
    if (strcmp(cmd, "help") == 0 && argc > 2) { /* klinefeed help run */
        const cli_command *cmds[] = {&cli_cmd_run, &cli_cmd_backfill, &cli_cmd_decode};
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
            if (strcmp(argv[2], cmds[i]->name) == 0) {
                cli_command_help(cmds[i], stdout);
                return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
            }
        cli_error("help: unknown command \"%s\" (commands: run, backfill, decode)", argv[2]);
        return CLI_EXIT_USAGE;
    }
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
