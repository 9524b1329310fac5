/* This file implements the Chakra ET file framing of traces/chakra.h: records written as a
 * base-128 varint length (least significant group first, as protobuf's own varints) followed
 * by the packed message, and read back with every length and message checked.
 *
 * Invariants: the writer's packing buffer grows to the largest record and is reused; the
 * reader's likewise (capped at CHAKRA_RECORD_MAX); an error leaves the reader usable only for
 * chakra_reader_close.
 * reference: Chakra ET framing (encodeMessage/decodeMessage of the Chakra tools: varint
 * length + message), https://github.com/mlcommons/chakra
 */
#include "traces/chakra.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------------------------ */

/* Room for n bytes in *buf; 0, or -1 out of memory. */
static int reserve(uint8_t **buf, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < n)
        c *= 2;
    uint8_t *b = realloc(*buf, c);
    if (!b)
        return -1;
    *buf = b;
    *cap = c;
    return 0;
}

static void put_varint(FILE *f, uint64_t v)
{
    while (v >= 0x80) {
        fputc((int)(v & 0x7f) | 0x80, f);
        v >>= 7;
    }
    fputc((int)v, f);
}

/* One record: length, then the message packed by pack. */
static ss_status put_record(chakra_writer *w, const ProtobufCMessage *m, ss_err *err)
{
    const size_t n = protobuf_c_message_get_packed_size(m);
    if (reserve(&w->buf, &w->cap, n) != 0)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory packing a Chakra record");
    const size_t packed = protobuf_c_message_pack(m, w->buf);
    SS_ASSERT(packed == n);
    put_varint(w->file.f, n);
    fwrite(w->buf, 1, n, w->file.f);
    w->records++;
    return SS_OK;
}

ss_status chakra_writer_open(chakra_writer *w, const char *path, const chakra_meta *meta,
                             ss_err *err)
{
    memset(w, 0, sizeof *w);
    ss_status st = file_atomic_open(&w->file, path, err);
    if (st != SS_OK)
        return st;
    st = put_record(w, &meta->base, err);
    if (st != SS_OK)
        chakra_writer_abort(w);
    return st;
}

ss_status chakra_writer_node(chakra_writer *w, const chakra_node *node, ss_err *err)
{
    return put_record(w, &node->base, err);
}

ss_status chakra_writer_close(chakra_writer *w, ss_err *err)
{
    free(w->buf);
    w->buf = NULL;
    return file_atomic_commit(&w->file, err);
}

void chakra_writer_abort(chakra_writer *w)
{
    free(w->buf);
    w->buf = NULL;
    file_atomic_abort(&w->file);
}

/* ---- reading ------------------------------------------------------------------------------ */

/* The next record's length: 1, 0 at a clean end of file, -1 on a malformed varint. */
static int get_varint(chakra_reader *r, uint64_t *v, ss_err *err)
{
    *v = 0;
    for (int i = 0; i < 10; i++) {
        const int c = fgetc(r->f);
        if (c == EOF) {
            if (i == 0 && !ferror(r->f))
                return 0;
            ss_err_set(err, SS_ERR_DATA, "%s: record %llu: %s", r->path,
                       (unsigned long long)r->records + 1,
                       ferror(r->f) ? "read error" : "truncated length varint");
            return -1;
        }
        *v |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80))
            return 1;
    }
    ss_err_set(err, SS_ERR_DATA, "%s: record %llu: length varint longer than 10 bytes",
               r->path, (unsigned long long)r->records + 1);
    return -1;
}

/* Reads the next record's bytes into r->buf (*n of them): 1, 0 at the end, -1 on error. */
static int get_record(chakra_reader *r, size_t *n, ss_err *err)
{
    uint64_t len = 0;
    const int got = get_varint(r, &len, err);
    if (got <= 0)
        return got;
    const unsigned long long rec = (unsigned long long)r->records + 1;
    if (len > CHAKRA_RECORD_MAX) {
        ss_err_set(err, SS_ERR_DATA, "%s: record %llu: length %llu exceeds %d bytes", r->path,
                   rec, (unsigned long long)len, CHAKRA_RECORD_MAX);
        return -1;
    }
    if (reserve(&r->buf, &r->cap, (size_t)len + 1) != 0) {
        ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory", r->path);
        return -1;
    }
    if (fread(r->buf, 1, (size_t)len, r->f) != (size_t)len) {
        ss_err_set(err, SS_ERR_DATA, "%s: record %llu: truncated (%llu bytes announced)",
                   r->path, rec, (unsigned long long)len);
        return -1;
    }
    r->records++;
    *n = (size_t)len;
    return 1;
}

ss_status chakra_reader_open(chakra_reader *r, const char *path, chakra_meta **meta,
                             ss_err *err)
{
    memset(r, 0, sizeof *r);
    *meta = NULL;
    snprintf(r->path, sizeof r->path, "%s", path);
    r->f = fopen(path, "rb");
    if (!r->f)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t n = 0;
    const int got = get_record(r, &n, err);
    if (got == 0)
        return ss_err_set(err, SS_ERR_DATA, "%s: empty file (no GlobalMetadata record)", path);
    if (got < 0)
        return err->code;
    *meta = chakra_proto_msg__global_metadata__unpack(NULL, n, r->buf);
    if (!*meta)
        return ss_err_set(err, SS_ERR_DATA, "%s: record 1: not a Chakra GlobalMetadata", path);
    return SS_OK;
}

ss_status chakra_reader_next(chakra_reader *r, chakra_node **node, ss_err *err)
{
    *node = NULL;
    size_t n = 0;
    const int got = get_record(r, &n, err);
    if (got <= 0)
        return got == 0 ? SS_OK : err->code;
    const unsigned long long rec = (unsigned long long)r->records;
    chakra_node *d = chakra_proto_msg__node__unpack(NULL, n, r->buf);
    if (!d)
        return ss_err_set(err, SS_ERR_DATA, "%s: record %llu: not a Chakra Node", r->path, rec);
    if (d->type < CHAKRA_PROTO_MSG__NODE_TYPE__METADATA_NODE ||
        d->type > CHAKRA_PROTO_MSG__NODE_TYPE__COMM_COLL_NODE) {
        ss_err_set(err, SS_ERR_DATA, "%s: record %llu: node %llu has unknown node type %d",
                   r->path, rec, (unsigned long long)d->id, (int)d->type);
        chakra_node_free(d);
        return SS_ERR_DATA;
    }
    *node = d;
    return SS_OK;
}

void chakra_reader_close(chakra_reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

void chakra_node_free(chakra_node *n)
{
    if (n)
        chakra_proto_msg__node__free_unpacked(n, NULL);
}

void chakra_meta_free(chakra_meta *m)
{
    if (m)
        chakra_proto_msg__global_metadata__free_unpacked(m, NULL);
}

/* ---- attributes -------------------------------------------------------------------------- */

static void attr_init(chakra_attr *a, const char *name, ChakraProtoMsg__AttributeProto__ValueCase c)
{
    chakra_proto_msg__attribute_proto__init(a);
    a->name = (char *)name;
    a->value_case = c;
}

void chakra_attr_int(chakra_attr *a, const char *name, int64_t v)
{
    attr_init(a, name, CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT64_VAL);
    a->int64_val = v;
}

void chakra_attr_i32(chakra_attr *a, const char *name, int32_t v)
{
    attr_init(a, name, CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT32_VAL);
    a->int32_val = v;
}

void chakra_attr_u64(chakra_attr *a, const char *name, uint64_t v)
{
    attr_init(a, name, CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_UINT64_VAL);
    a->uint64_val = v;
}

void chakra_attr_bool(chakra_attr *a, const char *name, int v)
{
    attr_init(a, name, CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_BOOL_VAL);
    a->bool_val = v != 0;
}

void chakra_attr_str(chakra_attr *a, const char *name, const char *v)
{
    attr_init(a, name, CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_STRING_VAL);
    a->string_val = (char *)v;
}

void chakra_attr_i32_list(chakra_attr *a, ChakraProtoMsg__Int32List *list, const char *name,
                          int32_t *v, size_t n)
{
    chakra_proto_msg__int32_list__init(list);
    list->n_values = n;
    list->values = v;
    attr_init(a, name, CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT32_LIST);
    a->int32_list = list;
}

void chakra_attr_u64_list(chakra_attr *a, ChakraProtoMsg__Uint64List *list, const char *name,
                          uint64_t *v, size_t n)
{
    chakra_proto_msg__uint64_list__init(list);
    list->n_values = n;
    list->values = v;
    attr_init(a, name, CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_UINT64_LIST);
    a->uint64_list = list;
}

const chakra_attr *chakra_attr_find(chakra_attr *const *attrs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(attrs[i]->name, name) == 0)
            return attrs[i];
    return NULL;
}

int chakra_attr_get_int(const chakra_attr *a, int64_t *v)
{
    if (!a)
        return 0;
    switch (a->value_case) {
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT32_VAL: *v = a->int32_val; return 1;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT64_VAL: *v = a->int64_val; return 1;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_UINT32_VAL: *v = a->uint32_val; return 1;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_UINT64_VAL:
        if (a->uint64_val > INT64_MAX)
            return 0;
        *v = (int64_t)a->uint64_val;
        return 1;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_SINT32_VAL: *v = a->sint32_val; return 1;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_SINT64_VAL: *v = a->sint64_val; return 1;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_BOOL_VAL: *v = a->bool_val; return 1;
    default: return 0;
    }
}

const char *chakra_attr_get_str(const chakra_attr *a)
{
    return a && a->value_case == CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_STRING_VAL
               ? a->string_val
               : NULL;
}

int chakra_attr_get_list(const chakra_attr *a, int64_t **v, size_t *n)
{
    if (!a)
        return 0;
    size_t k = 0;
    switch (a->value_case) {
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT32_LIST: k = a->int32_list->n_values; break;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT64_LIST: k = a->int64_list->n_values; break;
    case CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_UINT64_LIST: k = a->uint64_list->n_values; break;
    default: return 0;
    }
    int64_t *out = malloc((k + 1) * sizeof *out);
    if (!out)
        return 0;
    for (size_t i = 0; i < k; i++) {
        if (a->value_case == CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT32_LIST)
            out[i] = a->int32_list->values[i];
        else if (a->value_case == CHAKRA_PROTO_MSG__ATTRIBUTE_PROTO__VALUE_INT64_LIST)
            out[i] = a->int64_list->values[i];
        else if (a->uint64_list->values[i] <= INT64_MAX)
            out[i] = (int64_t)a->uint64_list->values[i];
        else {
            free(out);
            return 0;
        }
    }
    *v = out;
    *n = k;
    return 1;
}

const char *chakra_node_type_name(ChakraProtoMsg__NodeType t)
{
    static const char *const names[] = {"INVALID_NODE",   "METADATA_NODE",  "MEM_LOAD_NODE",
                                        "MEM_STORE_NODE", "COMP_NODE",      "COMM_SEND_NODE",
                                        "COMM_RECV_NODE", "COMM_COLL_NODE"};
    return (int)t >= 0 && (int)t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}
