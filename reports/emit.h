/* This file declares the one way switchsim prints a result: a JSON object (jansson) rendered
 * as an aligned text table, as CSV, or as JSON, so every subcommand offers the same three
 * formats from one description of its data.
 *
 * Invariants: the JSON form is the complete result; the table and CSV forms show the same
 * scalars. An object's scalar members print as "key  value" rows (table) or one header row and
 * one value row (CSV); a member that is an array of objects prints as its own table (table) or
 * its own header+rows block preceded by a "# name" line (CSV). Nested objects flatten to
 * "outer.inner" keys.
 */
#ifndef SWITCHSIM_REPORTS_EMIT_H
#define SWITCHSIM_REPORTS_EMIT_H

#include <stdio.h>

#include <jansson.h>

typedef enum { EMIT_TABLE = 0, EMIT_CSV = 1, EMIT_JSON = 2 } emit_format;

/* Writes obj to f in the given format; returns 0, or -1 on a write error. */
int emit_result(FILE *f, const json_t *obj, emit_format fmt);

#endif
