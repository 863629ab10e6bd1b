"""The durable functions of the end-to-end test (tests/e2e_emulator.rs).

They run on AWS's Python durable SDK (aws-durable-execution-sdk-python, brought by
aws-durable-execution-sdk-python-testing) inside lambda_stand_in.py, driven by AWS's local
emulator (dex-local-runner). Between them they use every operation type the durable API has:
steps (plain, retried until they succeed, failing for good), waits, callbacks (succeeded,
failed and timed out through the callback API, and wait_for_callback), child contexts,
parallel, map, wait_for_condition and chained invokes (a durable target that succeeds, one
that fails and a plain one), and end SUCCEEDED, FAILED, TIMED_OUT or STOPPED.

Waits, retry delays and time-outs are 1 or 2 s, so the whole set ends within a few seconds.
The test knows these functions by name (FUNCTIONS) and what each is meant to record: keep the
two in step.
"""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python.config import (
    CallbackConfig,
    Duration,
    StepConfig,
    StepSemantics,
)
from aws_durable_execution_sdk_python.context import (
    DurableContext,
    StepContext,
    durable_step,
    durable_with_child_context,
)
from aws_durable_execution_sdk_python.execution import durable_execution
from aws_durable_execution_sdk_python.retries import RetryDecision
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
)

ONE_SECOND = Duration.from_seconds(1)


def retry_up_to(attempts: int):
    """A retry strategy: `attempts` attempts in total, 1 s apart."""

    def strategy(error: Exception, attempts_made: int) -> RetryDecision:
        if attempts_made < attempts:
            return RetryDecision.retry(ONE_SECOND)
        return RetryDecision.no_retry()

    return strategy


# ------------------------------------------------------------------------------------------
# e2e-steps: plain steps, one named by its function, one at-most-once


@durable_step
def price_of(step_context: StepContext, sku: str, quantity: int) -> int:
    return len(sku) * quantity


@durable_execution
def steps(event: Any, context: DurableContext) -> dict:
    total = context.step(price_of(event.get("sku", "book"), 3))
    taxed = context.step(lambda _: round(total * 1.2, 2), name="add-tax")
    receipt = context.step(
        lambda _: f"receipt for {taxed}",
        name="write-receipt",
        config=StepConfig(step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY),
    )
    return {"total": total, "taxed": taxed, "receipt": receipt}


# ------------------------------------------------------------------------------------------
# e2e-retry: a step that fails on its first two attempts and succeeds on the third


@durable_step
def reserve_seat(step_context: StepContext) -> str:
    if step_context.attempt < 3:
        raise TimeoutError(f"seat service busy (attempt {step_context.attempt})")
    return f"seat 12A on attempt {step_context.attempt}"


@durable_execution
def retry(event: Any, context: DurableContext) -> dict:
    seat = context.step(reserve_seat(), name="reserve-seat",
                        config=StepConfig(retry_strategy=retry_up_to(3)))
    return {"seat": seat}


# ------------------------------------------------------------------------------------------
# e2e-step-fails: a step that fails on both of its attempts; the handler catches the error,
# runs a compensating step and succeeds


@durable_step
def charge_card(step_context: StepContext) -> str:
    raise RuntimeError(f"card declined (attempt {step_context.attempt})")


@durable_execution
def step_fails(event: Any, context: DurableContext) -> dict:
    try:
        charged = context.step(charge_card(), name="charge-card",
                               config=StepConfig(retry_strategy=retry_up_to(2)))
    except Exception as exc:  # noqa: BLE001
        charged = f"gave up: {exc}"
    refund = context.step(lambda _: "nothing to refund", name="compensate")
    return {"charged": charged, "refund": refund}


# ------------------------------------------------------------------------------------------
# e2e-waits: two waits between steps


@durable_execution
def waits(event: Any, context: DurableContext) -> dict:
    first = context.step(lambda _: "prepared", name="prepare")
    context.wait(ONE_SECOND, name="cool-down")
    second = context.step(lambda _: "checked", name="check")
    context.wait(Duration.from_seconds(2), name="settle")
    third = context.step(lambda _: "published", name="publish")
    return {"steps": [first, second, third]}


# ------------------------------------------------------------------------------------------
# e2e-callbacks: the test completes "approve" (after a heartbeat) and fails "review" through
# the callback API, leaves "courier" to time out after 2 s, then completes the callback of
# the wait_for_callback "sign-off"


@durable_execution
def callbacks(event: Any, context: DurableContext) -> dict:
    approve = context.create_callback(
        name="approve",
        config=CallbackConfig(timeout=Duration.from_seconds(60),
                              heartbeat_timeout=Duration.from_seconds(30)))
    review = context.create_callback(
        name="review", config=CallbackConfig(timeout=Duration.from_seconds(60)))
    courier = context.create_callback(
        name="courier", config=CallbackConfig(timeout=Duration.from_seconds(2)))

    out: dict[str, Any] = {"approve": approve.result()}
    for key, cb in (("review", review), ("courier", courier)):
        try:
            out[key] = cb.result()
        except Exception as exc:  # noqa: BLE001
            out[key] = f"{type(exc).__name__}: {exc}"

    def hand_over(callback_id: str, wfc_context) -> None:
        wfc_context.logger.info("sign-off requested with callback %s", callback_id)

    out["sign-off"] = context.wait_for_callback(hand_over, name="sign-off")
    return out


# ------------------------------------------------------------------------------------------
# e2e-child-contexts: a child context holding a step, a nested child context and a wait


@durable_with_child_context
def pack(ctx: DurableContext, items: int) -> int:
    boxes = ctx.step(lambda _: (items + 1) // 2, name="count-boxes")
    return ctx.step(lambda _: boxes * 2, name="label-boxes")


@durable_with_child_context
def fulfil(ctx: DurableContext, items: int) -> dict:
    picked = ctx.step(lambda _: items, name="pick")
    labels = ctx.run_in_child_context(pack(picked), name="pack")
    ctx.wait(ONE_SECOND, name="await-truck")
    return {"picked": picked, "labels": labels}


@durable_execution
def child_contexts(event: Any, context: DurableContext) -> dict:
    shipped = context.run_in_child_context(fulfil(event.get("items", 5)), name="fulfil")
    note = context.step(lambda _: "shipped", name="notify")
    return {"shipped": shipped, "note": note}


# ------------------------------------------------------------------------------------------
# e2e-parallel-map: parallel (a branch with a step, one with a wait and a step, one empty),
# map over three items, and a wait_for_condition polled three times, 1 s apart


def quote_air(ctx: DurableContext) -> str:
    return ctx.step(lambda _: "air: 40", name="quote-air")


def quote_sea(ctx: DurableContext) -> str:
    ctx.wait(ONE_SECOND, name="sea-desk-opens")
    return ctx.step(lambda _: "sea: 12", name="quote-sea")


def quote_rail(ctx: DurableContext) -> str:
    return "rail: none"


def weigh(ctx: DurableContext, parcel: int, index: int, parcels) -> int:
    return ctx.step(lambda _: parcel * 3, name=f"weigh-{index}")


def until_three(state: int, attempts_made: int) -> WaitForConditionDecision:
    if state >= 3:
        return WaitForConditionDecision.stop_polling()
    return WaitForConditionDecision.continue_waiting(ONE_SECOND)


@durable_execution
def parallel_map(event: Any, context: DurableContext) -> dict:
    quotes = context.parallel([quote_air, quote_sea, quote_rail], name="quotes")
    weights = context.map([2, 5, 7], weigh, name="weigh-parcels")
    polls = context.wait_for_condition(
        lambda state, check_ctx: state + 1,
        config=WaitForConditionConfig(wait_strategy=until_three, initial_state=0),
        name="await-customs",
    )
    return {"quotes": quotes.get_results(), "weights": weights.get_results(), "polls": polls}


# ------------------------------------------------------------------------------------------
# e2e-chained-invoke: invokes a durable function that succeeds, a plain one, and a durable one
# that fails. (Not a function that does not exist: the emulator may then record the
# ChainedInvokeFailed before the ChainedInvokeStarted.)


@durable_execution
def invoke_target(event: Any, context: DurableContext) -> dict:
    stock = context.step(lambda _: event.get("want", 0) + 10, name="check-stock")
    return {"stock": stock}


@durable_execution
def invoke_refuses(event: Any, context: DurableContext) -> dict:
    context.step(lambda _: f"audit of {event.get('order')}", name="open-audit")
    context.step(charge_card(), name="audit-charge",
                 config=StepConfig(retry_strategy=retry_up_to(1)))
    return {"unreachable": True}


def invoke_plain(event: Any, lambda_context: Any) -> dict:
    """An ordinary (not durable) Lambda handler."""
    return {"rate": f"rate-for-{event.get('zone')}", "eur": 7}


@durable_execution
def chained_invoke(event: Any, context: DurableContext) -> dict:
    stock = context.invoke("e2e-invoke-target", {"want": 4}, name="ask-warehouse")
    rate = context.invoke("e2e-invoke-plain", {"zone": "eu"}, name="ask-rates")
    try:
        audit = context.invoke("e2e-invoke-refuses", {"order": 7}, name="ask-audit")
    except Exception as exc:  # noqa: BLE001
        audit = f"{type(exc).__name__}: {exc}"
    return {"stock": stock, "rate": rate, "audit": audit}


# ------------------------------------------------------------------------------------------
# e2e-fails: a step fails without retries and the handler lets the error out: FAILED


@durable_execution
def fails(event: Any, context: DurableContext) -> dict:
    context.step(lambda _: "validated", name="validate")
    context.step(charge_card(), name="charge-once",
                 config=StepConfig(retry_strategy=retry_up_to(1)))
    return {"unreachable": True}


# ------------------------------------------------------------------------------------------
# e2e-timed-out and e2e-stopped: a step, then a wait far longer than the execution may run
# (the test starts e2e-timed-out with a 2 s execution time-out and stops e2e-stopped)


@durable_execution
def long_wait(event: Any, context: DurableContext) -> dict:
    context.step(lambda _: "begun", name="begin")
    context.wait(Duration.from_seconds(300), name="hold")
    return {"held": True}


FUNCTIONS: dict[str, Any] = {
    "e2e-steps": steps,
    "e2e-retry": retry,
    "e2e-step-fails": step_fails,
    "e2e-waits": waits,
    "e2e-callbacks": callbacks,
    "e2e-child-contexts": child_contexts,
    "e2e-parallel-map": parallel_map,
    "e2e-chained-invoke": chained_invoke,
    "e2e-invoke-target": invoke_target,
    "e2e-invoke-refuses": invoke_refuses,
    "e2e-invoke-plain": invoke_plain,
    "e2e-fails": fails,
    "e2e-timed-out": long_wait,
    "e2e-stopped": long_wait,
}

# Chained-invoke targets, for dex-local-runner's --function-configs (Lambda's own shape).
INVOKE_TARGETS: dict[str, Any] = {
    "e2e-invoke-target": {"DurableConfig": {"ExecutionTimeout": 60, "RetentionPeriodInDays": 1}},
    "e2e-invoke-refuses": {"DurableConfig": {"ExecutionTimeout": 60, "RetentionPeriodInDays": 1}},
    "e2e-invoke-plain": {},
}
