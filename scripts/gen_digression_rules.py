"""Writes nlu_data/rules/digressions.yml: what happens when a customer digresses inside a form.

Why generated: every form needs the same behaviours (answer a side question and resume, stop on
request, stop on a "no" it cannot use, hand over to a human, help with "I don't know", leave the form
for another request), and writing 8 x 30 rules by hand invites typos. The CSAT form is different: a
customer who asks for something else instead of rating leaves it, and the request is served as it would
be outside any form.
Run `python scripts/gen_digression_rules.py` after adding a form or an FAQ intent;
tests/test_rasa_data.py fails when the file is out of date.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "nlu_data" / "rules" / "digressions.yml"

FORMS = [
    "track_order_form",
    "track_refund_form",
    "invoice_form",
    "cancel_order_form",
    "refund_form",
    "address_form",
    "email_change_form",
    "feedback_form",
]
CSAT_FORM = "csat_form"  # not resumed after a digression: see csat_rules()
# side question -> the action that answers it
SIDE_QUESTIONS = {
    "delivery_options": "action_answer_faq",
    "delivery_period": "action_answer_faq",
    "check_refund_policy": "action_answer_faq",
    "check_payment_methods": "action_answer_faq",
    "check_cancellation_fee": "action_answer_faq",
    "contact_customer_service": "action_answer_faq",
    "bot_challenge": "utter_iamabot",
    "chitchat": "utter_chitchat",
    "nlu_fallback": "action_fallback",
}
# another request mid-form (task digression): the form's validation rejects the message
# (actions/common.py TASK_SWITCH_INTENTS, the same list; from_text slots list them under not_intent),
# the rule leaves the form, action_switch_task offers a way back, and the request starts as it would
# outside any form. A form's own intents (below) are answers to it, never a switch.
TASK_SWITCH_INTENTS = [
    "track_order",
    "cancel_order",
    "track_refund",
    "get_refund",
    "return_item",
    "check_invoice",
    "get_invoice",
    "change_shipping_address",
    "recommend_products",
]
OWN_INTENTS = {
    "track_order_form": {"track_order"},
    "track_refund_form": {"track_refund"},
    "invoice_form": {"check_invoice", "get_invoice"},
    "cancel_order_form": {"cancel_order"},
    "refund_form": {"get_refund", "return_item"},
    "address_form": {"change_shipping_address"},
    "email_change_form": {"edit_account"},
    "feedback_form": {"review"},
}


def handlers() -> dict[str, list[dict]]:
    """What each intent starts outside any form: the steps after it in the unconditioned rules."""
    out: dict[str, list[dict]] = {}
    for path in sorted((ROOT / "nlu_data" / "rules").glob("*.yml")):
        if path.name in ("digressions.yml", "csat.yml"):
            continue
        for rule in yaml.safe_load(path.read_text()).get("rules", []):
            steps = rule.get("steps") or []
            if rule.get("condition") or not steps or "intent" not in steps[0]:
                continue
            out.setdefault(steps[0]["intent"], steps[1:])
    return out


def csat_rules() -> list[dict]:
    """The customer ignores the CSAT question and asks for something else: leave the form, serve it.

    The intents are csat_rating's ``not_intent`` in domain.yml (the ones that reject the form).
    """
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    moves_on = domain["slots"]["csat_rating"]["mappings"][0]["not_intent"]
    known = handlers()
    rules = []
    for intent in moves_on:
        rules.append(
            {
                "rule": f"csat: the customer moves on ({intent})",
                "condition": [{"active_loop": CSAT_FORM}],
                "steps": [
                    {"intent": intent},
                    {"action": "action_deactivate_loop"},
                    {"active_loop": None},
                    *known[intent],
                ],
            }
        )
    return rules


def build() -> str:
    rules = []
    known = handlers()
    for form in FORMS:
        label = form.replace("_form", "").replace("_", " ")
        for intent, action in SIDE_QUESTIONS.items():
            rules.append(
                {
                    "rule": f"{label}: answer {intent} and resume",
                    "condition": [{"active_loop": form}],
                    "steps": [{"intent": intent}, {"action": action}, {"action": form}, {"active_loop": form}],
                }
            )
        rules.append(
            {
                "rule": f"{label}: stop on request",
                "condition": [{"active_loop": form}],
                "steps": [
                    {"intent": "stop"},
                    {"action": "action_deactivate_loop"},
                    {"active_loop": None},
                    {"action": "action_stop_task"},
                ],
            }
        )
        # "no" where the form asks for an order number or email fills nothing, so the form
        # rejects it; without this rule the unconditioned "deny" rule answered "anything else?"
        # and the still-active form asked the same question again, for ever. A "no" that fills a
        # slot (the yes/no confirmations) never gets here: the form takes it.
        rules.append(
            {
                "rule": f"{label}: stop when the customer says no",
                "condition": [{"active_loop": form}],
                "steps": [
                    {"intent": "deny"},
                    {"action": "action_deactivate_loop"},
                    {"active_loop": None},
                    {"action": "action_stop_task"},
                ],
            }
        )
        rules.append(
            {
                "rule": f"{label}: hand over to a human",
                "condition": [{"active_loop": form}],
                "steps": [
                    {"intent": "contact_human_agent"},
                    {"action": "action_deactivate_loop"},
                    {"active_loop": None},
                    {"action": "action_request_human"},
                ],
            }
        )

        # "yes" where an order number or an email is asked fills nothing: an answer that doesn't
        # fit, explained and counted like "12345" (an ``inform`` the form could not use), never
        # "anything else?" with the same question after it
        rules.append(
            {
                "rule": f"{label}: a yes that answers nothing",
                "condition": [{"active_loop": form}],
                "steps": [
                    {"intent": "affirm"},
                    {"action": "action_handle_inform"},
                    {"action": form},
                    {"active_loop": form},
                ],
            }
        )
        # "I don't know (the order number)": a way forward (recent orders, where to find it, a
        # person); the form goes on and its question is not asked again (actions/prompts.py)
        rules.append(
            {
                "rule": f"{label}: help when the customer doesn't know the answer",
                "condition": [{"active_loop": form}],
                "steps": [
                    {"intent": "dont_know"},
                    {"action": "action_help_missing_answer"},
                    {"action": form},
                    {"active_loop": form},
                ],
            }
        )
        for intent in TASK_SWITCH_INTENTS:
            if intent in OWN_INTENTS[form]:
                continue
            rules.append(
                {
                    "rule": f"{label}: switch to {intent}",
                    "condition": [{"active_loop": form}],
                    "steps": [
                        {"intent": intent},
                        {"action": "action_deactivate_loop"},
                        {"active_loop": None},
                        {"action": "action_switch_task"},
                        *copy.deepcopy(known[intent]),
                    ],
                }
            )

    rules += csat_rules()

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", "null"))
    header = '# Generated by scripts/gen_digression_rules.py - edit that script, not this file.\nversion: "3.1"\n\n'
    return header + yaml.dump({"rules": rules}, Dumper=Dumper, sort_keys=False, width=120)


if __name__ == "__main__":
    text = build()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
