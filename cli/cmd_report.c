/* This file implements `switchsim report RESULTS.json... -o DIR`: it reads estimate results
 * (`switchsim estimate --results FILE`) and sweep files, and writes a performance report into
 * DIR (reports/report.h): report.md, a self-contained report.html, one CSV per table and one
 * SVG per chart.
 *
 * Invariants: exit statuses as cli.h: 2 for bad options (no input, no -o); 1 when an input
 * cannot be read or is not a result or sweep (the message names the file) or the report cannot
 * be written; nothing is written unless every input loaded. Files are written atomically.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "reports/report.h"

int cmd_report(int argc, char **argv)
{
    const char *out_dir = NULL, *title = NULL;
    cli_opt opts[] = {
        {"output", CLI_OPT_STR, &out_dir, "DIR",
         "directory to write the report into (created if absent; files in it are replaced)",
         NULL, 0, 0, 1},
        {"title", CLI_OPT_STR, &title, "T", "report title (default: switchsim performance report)",
         NULL, 0, 0, 0},
    };
    cli_spec spec = {
        "switchsim report RESULTS.json... -o DIR [--title T]",
        "Writes a performance report of one or more estimate results into DIR: report.md\n"
        "(Markdown, charts as SVG images), report.html (self-contained: inline CSS and SVG,\n"
        "no script, no network), one CSV per table and one SVG per chart.\n\n"
        "Inputs are results written by `switchsim estimate --results FILE` (or its --format\n"
        "json output) and sweep files written by `switchsim sweep`, whose failed points are\n"
        "listed with their errors. One result gives the summary, the step-time breakdown of\n"
        "the critical core (total and per layer: compute by op class, exposed communication\n"
        "by collective kind, idle), the link-utilisation heatmap of the torus (one per z\n"
        "slice in 3-D), the expert load of each Switch layer with its capacity and dropped\n"
        "fraction, and a roofline of the step's ops. Several results give a summary row each,\n"
        "their breakdowns side by side and scaling curves of throughput against cores,\n"
        "experts and link bandwidth, for those that vary (log axes).\n\n"
        "Every figure is an estimate of the simulator; the report says so and repeats each\n"
        "result's note. The numbers in the charts (data-value, data-x, data-y attributes) and\n"
        "the CSVs are the results' JSON numbers. -o is short for --output.",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        1,
        -1,
        "examples (from the source tree):\n"
        "  switchsim estimate --run configs/runs/switch-base-128-v3-32.yaml --results sb.json\n"
        "  switchsim report sb.json -o report-sb\n"
        "  switchsim report a.json b.json sweep.json -o scaling --title 'Expert scaling'\n"
        "  reports/examples/regenerate.sh   (the committed example reports)",
    };
    cli_short_output(argc, argv);
    char *pos[argc > 0 ? argc : 1];
    int npos = 0;
    const int prc = cli_parse(&spec, argc, argv, pos, &npos);
    if (prc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (prc != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    report_set set;
    memset(&set, 0, sizeof set);
    ss_err err = {0};
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < npos && rc == CLI_EXIT_OK; i++)
        if (report_set_add_file(&set, pos[i], &err) != SS_OK) {
            cli_error("report", "%s", err.msg);
            rc = CLI_EXIT_FAIL;
        }
    const report_opts ro = {title};
    if (rc == CLI_EXIT_OK && report_write(&set, &ro, out_dir, &err) != SS_OK) {
        cli_error("report", "%s: %s", out_dir, err.msg);
        rc = CLI_EXIT_FAIL;
    }
    if (rc == CLI_EXIT_OK)
        fprintf(stderr, "switchsim: report: %d result%s%s written to %s/report.md and "
                        "report.html\n",
                set.n, set.n == 1 ? "" : "s", set.nfailed ? " (and failed points)" : "",
                out_dir);
    report_set_free(&set);
    return rc;
}
