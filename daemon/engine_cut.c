/* engine_cut.c - cut groups: for each group, the list of its playing
 * voices, found through a trie of fixed depth, and cutting a group.  The
 * core (engine.c) puts a voice on its group's list where it starts playing
 * and takes it off where it starts fading or ends (engine_impl.h).
 *
 * A voice started with cut g > 0 fades out (the declick fade, from its own
 * frame) every playing voice started with the same g, of any slot; g < 0,
 * only those of its own slot with that g.  So a group is a key of 48 bits:
 * g > 0 gives g - 1 (31 bits); g < 0 gives bit 47, the slot (16 bits) and
 * -g - 1 (31 bits).  The playing voices of a key are a list (cut_links:
 * cprev, cnext) whose head is a leaf of a 16-ary trie of ENGINE_CUT_LEVELS
 * levels on the key.  Why a trie rather than a hash: its cost is the same
 * fixed number of steps for any key, where chains or probes of a hash grow
 * with the keys that collide, which the group numbers a client sends
 * decide.  A key is in the trie while one of its voices plays, so at most
 * npool keys, each with at most ENGINE_CUT_LEVELS - 1 nodes besides the
 * root: the node pool (engine_init) never runs out.
 */
#include "engine_impl.h"

/* The key of group g for a voice of `slot` (the top of this file); g != 0. */
static inline uint64_t cut_key(int32_t g, uint32_t slot)
{
    if (g > 0)
        return (uint64_t)g - 1;
    return (uint64_t)1 << 47 | (uint64_t)slot << 31 | ((uint64_t)(-(int64_t)g) - 1);
}

_Static_assert(4 * ENGINE_CUT_LEVELS >= 48, "the trie spans the 48 bits of a cut key");
_Static_assert(ENGINE_MAX_SLOTS <= 65536, "a slot fits the 16 bits of a cut key");
_Static_assert(1 + (ENGINE_CUT_LEVELS - 1) * 2 * ENGINE_MAX_VOICES < ENGINE_NONE,
               "cut nodes are 16-bit indices beside ENGINE_NONE");

/* The child of `key` at `level` (0: the root's). */
static inline uint32_t cut_nibble(uint64_t key, uint32_t level)
{
    return (uint32_t)(key >> (4 * (ENGINE_CUT_LEVELS - 1 - level))) & (ENGINE_CUT_FAN - 1);
}

/* The last-level node on key's path, whose child cut_nibble(key,
 * ENGINE_CUT_LEVELS - 1) is the head of the group's list.  With `make`, the
 * nodes missing on the way are taken from the free stack (there are always
 * enough: the top of this file); without, ENGINE_NONE when one is missing. */
static uint16_t cut_leaf(struct engine *e, uint64_t key, bool make)
{
    uint16_t n = 0;
    for (uint32_t level = 0; level + 1 < ENGINE_CUT_LEVELS; level++) {
        uint16_t *c = &e->cut_nodes[n].child[cut_nibble(key, level)];
        if (*c == ENGINE_NONE) {
            if (!make)
                return ENGINE_NONE;
            *c = e->cut_free[--e->ncut_free];
            e->cut_nodes[n].used++;
        }
        n = *c;
    }
    return n;
}

/* Key's list has just become empty: frees the nodes of its path that hold
 * nothing else, from the leaf up (never the root). */
static void cut_prune(struct engine *e, uint64_t key)
{
    uint16_t path[ENGINE_CUT_LEVELS];
    path[0] = 0;
    for (uint32_t level = 0; level + 1 < ENGINE_CUT_LEVELS; level++)
        path[level + 1] = e->cut_nodes[path[level]].child[cut_nibble(key, level)];
    for (uint32_t level = ENGINE_CUT_LEVELS - 1; level > 0; level--) {
        if (--e->cut_nodes[path[level]].used > 0)
            return;
        e->cut_nodes[path[level - 1]].child[cut_nibble(key, level - 1)] = ENGINE_NONE;
        e->cut_free[e->ncut_free++] = path[level];
    }
    e->cut_nodes[0].used--;
}

/* Puts playing voice i (grouped) at the front of its group's list. */
void cut_add(struct engine *e, uint32_t i)
{
    struct cut_links *l = &e->cuts[i];
    uint64_t key = cut_key(l->cut, e->voices[i].slot);
    uint16_t leaf = cut_leaf(e, key, true);
    uint32_t k = cut_nibble(key, ENGINE_CUT_LEVELS - 1);
    uint16_t *head = &e->cut_nodes[leaf].child[k];
    l->cleaf = leaf;
    l->cchild = (uint16_t)k;
    l->cprev = ENGINE_NONE;
    l->cnext = *head;
    if (*head != ENGINE_NONE)
        e->cuts[*head].cprev = (uint16_t)i;
    else
        e->cut_nodes[leaf].used++;
    *head = (uint16_t)i;
}

void cut_remove(struct engine *e, uint32_t i)
{
    struct cut_links *l = &e->cuts[i];
    if (l->cprev != ENGINE_NONE)
        e->cuts[l->cprev].cnext = l->cnext;
    else
        e->cut_nodes[l->cleaf].child[l->cchild] = l->cnext;
    if (l->cnext != ENGINE_NONE)
        e->cuts[l->cnext].cprev = l->cprev;
    else if (l->cprev == ENGINE_NONE)
        cut_prune(e, cut_key(l->cut, e->voices[i].slot));
    l->cprev = l->cnext = l->cleaf = ENGINE_NONE;
}

/* Fades out, over the declick fade from frame `delay`, every playing voice
 * of cut group g (!= 0) as a voice of `slot` sees it; each
 * leaves the group's list as it starts fading (or ends, if silent). */
void cut_group(struct engine *e, int32_t g, uint32_t slot, uint32_t delay)
{
    uint64_t key = cut_key(g, slot);
    uint16_t leaf = cut_leaf(e, key, false);
    if (leaf == ENGINE_NONE)
        return;
    uint16_t i = e->cut_nodes[leaf].child[cut_nibble(key, ENGINE_CUT_LEVELS - 1)];
    while (i != ENGINE_NONE) {
        uint16_t next = e->cuts[i].cnext; /* the leaf may be freed with the last */
        voice_fade_out(e, &e->voices[i], delay, e->fade_frames);
        i = next;
    }
}
