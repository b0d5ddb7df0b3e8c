import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { batchSpacingMs, nextTable, type NicRecord, planPool } from "./model.ts";

const targets = { poolLow: 3, poolHigh: 5, maxNic: 10 };

Deno.test("planPool fills an empty pool to poolLow in one batch", () => {
  assertEquals(planPool({ free: 0, pending: 0, total: 0, waiters: 0 }, targets), {
    create: 3,
    trim: 0,
  });
});

Deno.test("planPool counts in-flight NICs and adds one per waiter", () => {
  assertEquals(planPool({ free: 0, pending: 3, total: 3, waiters: 5 }, targets).create, 5);
  assertEquals(planPool({ free: 0, pending: 3, total: 3, waiters: 1 }, targets).create, 3);
  assertEquals(planPool({ free: 1, pending: 2, total: 3, waiters: 0 }, targets).create, 0);
});

Deno.test("planPool never exceeds maxNic", () => {
  assertEquals(planPool({ free: 0, pending: 0, total: 8, waiters: 30 }, targets).create, 2);
  assertEquals(planPool({ free: 0, pending: 0, total: 10, waiters: 30 }, targets).create, 0);
});

Deno.test("planPool trims above poolHigh only when idle", () => {
  assertEquals(planPool({ free: 9, pending: 0, total: 9, waiters: 0 }, targets), {
    create: 0,
    trim: 4,
  });
  assertEquals(planPool({ free: 9, pending: 1, total: 10, waiters: 0 }, targets).trim, 0);
  assertEquals(planPool({ free: 5, pending: 0, total: 5, waiters: 0 }, targets).trim, 0);
});

Deno.test("nextTable takes the lowest free table at or above the base", () => {
  const nic = (table: number) => ({ table }) as NicRecord;
  assertEquals(nextTable([], 260), 260);
  assertEquals(nextTable([nic(260), nic(261), nic(263)], 260), 262);
});

Deno.test("planPool grows batches while ADDs keep waiting, and holds NICs until demand is quiet", () => {
  const t = { poolLow: 3, poolHigh: 20, maxNic: 63 };
  const waiting = { free: 0, pending: 0, total: 10, waiters: 1 };
  assertEquals(planPool(waiting, t, { streak: 0 }).create, 4);
  assertEquals(planPool(waiting, t, { streak: 1 }).create, 6);
  assertEquals(planPool(waiting, t, { streak: 2 }).create, 12);
  assertEquals(planPool(waiting, t, { streak: 10 }).create, 21, "capped by waiters + poolHigh");
  assertEquals(
    planPool({ ...waiting, total: 50 }, t, { streak: 10 }).create,
    13,
    "capped by maxNic",
  );
  assertEquals(planPool({ free: 0, pending: 0, total: 0, waiters: 0 }, t, { streak: 3 }).create, 3);
  const excess = { free: 25, pending: 0, total: 25, waiters: 0 };
  assertEquals(planPool(excess, t, { idle: false }).trim, 0);
  assertEquals(planPool(excess, t, { idle: true }).trim, 5);
});

Deno.test("planPool: NICs in IP cooldown are not counted as ready, nor trimmed until cooled", () => {
  // 2 free, both cooling: the pool still needs poolLow ready ones…
  assertEquals(planPool({ free: 2, cooling: 2, pending: 0, total: 2, waiters: 0 }, targets), {
    create: 3,
    trim: 0,
  });
  // …but cooldown never grows it past poolHigh (5) free NICs: then the longest-cooled goes out.
  assertEquals(
    planPool({ free: 4, cooling: 4, pending: 0, total: 4, waiters: 0 }, targets).create,
    1,
  );
  assertEquals(
    planPool({ free: 5, cooling: 5, pending: 0, total: 5, waiters: 0 }, targets).create,
    0,
  );
  // 9 free, 6 of them cooling: 3 ready ≤ poolHigh, nothing trimmed yet.
  assertEquals(planPool({ free: 9, cooling: 6, pending: 0, total: 9, waiters: 0 }, targets), {
    create: 0,
    trim: 0,
  });
  assertEquals(
    planPool({ free: 9, cooling: 1, pending: 0, total: 9, waiters: 0 }, targets).trim,
    3,
  );
});

Deno.test("planPool: a burst creates no more NICs than pods waiting plus poolHigh", () => {
  const t = { poolLow: 3, poolHigh: 3, maxNic: 63 };
  // 5 waiting, streak 3: the growth alone would create 24.
  assertEquals(planPool({ free: 0, pending: 0, total: 3, waiters: 5 }, t, { streak: 3 }).create, 8);
  // 30 pods arriving a few at a time, each pass sizing a batch for those not yet covered.
  for (const step of [1, 2, 3, 5, 7]) {
    let pending = 0;
    let created = 0;
    let streak = 0;
    for (let waiters = step; waiters <= 30; waiters += step) {
      const plan = planPool({ free: 0, pending, total: pending, waiters }, t, { streak });
      if (plan.create > 0) streak++;
      pending += plan.create;
      created += plan.create;
    }
    if (30 % step !== 0) {
      created += planPool({ free: 0, pending, total: pending, waiters: 30 }, t, { streak }).create;
    }
    assertEquals(created <= 30 + t.poolHigh, true, `arrivals of ${step}: ${created} NICs`);
    assertEquals(created >= 30, true, `arrivals of ${step}: ${created} NICs serve all 30`);
  }
});

Deno.test("batchSpacingMs: at once for the first batch of a burst, then 100 ms, then 200", () => {
  assertEquals([0, 1, 2, 3, 4, 10].map(batchSpacingMs), [0, 100, 200, 200, 200, 200]);
});
