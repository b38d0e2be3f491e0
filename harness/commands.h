/* commands.h -- the subcommands of bin/slodrill, one function each.
 *
 * Each takes the arguments after its name and returns the process exit code
 * (0 pass, 1 a check failed, 2 bad usage or input, 3 stopped; see README).
 * Each prints its usage for --help and exits 0. A new subcommand lives in a
 * file of its own (harness/cmd_NAME.c), is declared here and added to
 * COMMANDS_MORE, and gets a line in usage_main (main.c) and the README. */
#ifndef SLODRILL_COMMANDS_H
#define SLODRILL_COMMANDS_H

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
};

const struct command *command_find(const char *name);

int cmd_run(int argc, char **argv);
int cmd_gate(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_router(int argc, char **argv);
int cmd_fake(int argc, char **argv);
int cmd_promote(int argc, char **argv);
int cmd_slo(int argc, char **argv);
int cmd_drill(int argc, char **argv);
int cmd_alerts(int argc, char **argv);
int cmd_fault(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_lint(int argc, char **argv);

/* Further commands, from their own files. */
#define COMMANDS_MORE {"promote", cmd_promote}, {"slo", cmd_slo}, {"drill", cmd_drill}, {"alerts", cmd_alerts}, {"lint", cmd_lint}, {"cache", cmd_cache}, {"fault", cmd_fault},

#endif
