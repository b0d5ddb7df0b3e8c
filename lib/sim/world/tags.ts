/**
 * Tags and their bindings to resources (TAGGABLE types only): create/describe/delete tags,
 * attach/detach resource–tag pairs (validated in full first; another owner's tag or resource →
 * 1400), and the lookups other modules filter by (`hasAnyTag`) or clean up with
 * (`dropBindings`, when a resource is deleted).
 */
import { invalidParameter, SimApiError } from "../errors.ts";
import {
  bindingKey,
  dedupe,
  matchAny,
  matchWord,
  owned,
  sortNewest,
  type Tables,
  taggable,
} from "./tables.ts";
import { type Tag, type TagBinding, TAGGABLE } from "./types.ts";

/** True when `tagIds` is empty (no filter) or the resource carries one of them. */
export function hasAnyTag(w: Tables, type: string, id: string, tagIds: string[]): boolean {
  return tagIds.length === 0 || tagIds.some((t) => w.bindings.has(bindingKey(t, type, id)));
}

/** Removes every binding of a resource (it is being deleted). */
export function dropBindings(w: Tables, type: string, id: string): void {
  for (const [k, b] of w.bindings) {
    if (b.resourceType === type && b.resourceId === id) w.bindings.delete(k);
  }
}

/** Tags bound to a resource. */
export function tagsOf(w: Tables, type: string, id: string): Tag[] {
  const out: Tag[] = [];
  for (const b of w.bindings.values()) {
    if (b.resourceType === type && b.resourceId === id) {
      const tag = w.tags.get(b.tagId);
      if (tag) out.push(tag);
    }
  }
  return out;
}

export function bindingsOf(w: Tables, tagId: string): TagBinding[] {
  return [...w.bindings.values()].filter((b) => b.tagId === tagId);
}

export function createTag(
  w: Tables,
  owner: string,
  o: { name: string; color: string; description: string },
): Tag {
  if (o.name.length === 0) throw invalidParameter("parameter [tag_name] is required");
  if (o.name.length >= 15) {
    throw invalidParameter(`tag_name [${o.name}] must be shorter than 15 characters`);
  }
  for (const t of w.tags.values()) {
    if (t.owner === owner && t.name === o.name) {
      throw new SimApiError(2110, `ResourceAlreadyExists, tag name [${o.name}] already exists`);
    }
  }
  const tag: Tag = { id: w.newId("tag-", 8), ...o, owner, createMs: w.now() };
  w.tags.set(tag.id, tag);
  return tag;
}

export function describeTags(
  w: Tables,
  owner: string,
  f: { ids: string[]; searchWord?: string },
): Tag[] {
  return sortNewest(
    [...w.tags.values()].filter((t) =>
      t.owner === owner && matchAny(f.ids, t.id) && matchWord(f.searchWord, t.id, t.name)
    ),
  );
}

function checkPairs(
  w: Tables,
  owner: string,
  pairs: { tagId: string; resourceType: string; resourceId: string }[],
) {
  if (pairs.length === 0) throw invalidParameter("parameter [resource_tag_pairs] is required");
  for (const p of pairs) {
    owned(w.tags.get(p.tagId), p.tagId, owner);
    if (!(TAGGABLE as readonly string[]).includes(p.resourceType)) {
      throw invalidParameter(
        `resource_type [${p.resourceType}] is not one of ${TAGGABLE.join(", ")}`,
      );
    }
    owned(taggable(w, p.resourceType, p.resourceId), p.resourceId, owner);
  }
}

export function attachTags(
  w: Tables,
  owner: string,
  pairs: { tagId: string; resourceType: string; resourceId: string }[],
): void {
  checkPairs(w, owner, pairs);
  const t = w.now();
  for (const p of pairs) {
    const k = bindingKey(p.tagId, p.resourceType, p.resourceId);
    if (!w.bindings.has(k)) w.bindings.set(k, { ...p, createMs: t });
  }
}

export function detachTags(
  w: Tables,
  owner: string,
  pairs: { tagId: string; resourceType: string; resourceId: string }[],
): void {
  checkPairs(w, owner, pairs);
  for (const p of pairs) w.bindings.delete(bindingKey(p.tagId, p.resourceType, p.resourceId));
}

export function deleteTags(w: Tables, owner: string, tagIds: string[]): string[] {
  const ids = dedupe(tagIds);
  if (ids.length === 0) throw invalidParameter("parameter [tags] is required");
  for (const id of ids) owned(w.tags.get(id), id, owner);
  for (const id of ids) {
    w.tags.delete(id);
    for (const [k, b] of w.bindings) if (b.tagId === id) w.bindings.delete(k);
  }
  return ids;
}
