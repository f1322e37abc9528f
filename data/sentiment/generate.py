"""Generate data/sentiment/messages.csv from hand-written templates (written for Concierge).

Every template below was written for this project; none is copied from a public data set.
Slots ({item}, {order}, {days}, ...) are filled from small hand-written lists, and a seeded
random "noise" step adds what real chat messages have: lower case, missing apostrophes,
typos, emoji, no final punctuation. The output is deterministic (fixed seed).

Labelling rule: the label is the customer's overall feeling about the shop/service in this
message. Sarcasm counts as what is meant ("great, another delay" -> negative). Mixed messages
take the dominant feeling: a complaint that still stands -> negative, a problem that was
solved and thanked for -> positive. Plain questions/requests/facts -> neutral.

Run: python data/sentiment/generate.py   (writes messages.csv next to this file)
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

SEED = 20261122
PER_LABEL = 620

ITEMS = [
    "hoodie",
    "running shoes",
    "blender",
    "phone case",
    "desk lamp",
    "yoga mat",
    "coffee beans",
    "backpack",
    "headphones",
    "winter jacket",
    "water bottle",
    "sofa cushion",
    "kettle",
    "bluetooth speaker",
    "dog food",
    "face cream",
    "notebook set",
    "air fryer",
    "jeans",
    "baby monitor",
    "gaming mouse",
    "bed sheets",
    "frying pan",
    "smartwatch",
    "dress",
    "vitamin pack",
    "printer ink",
    "umbrella",
    "toaster",
    "laptop stand",
    "tea sampler",
]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS", "the courier", "the delivery guy", "the driver"]
PEOPLE = ["Sarah", "the agent", "your colleague", "Mike", "the lady on the phone", "your support team", "Priya"]
DAYS = ["two", "three", "4", "5", "six", "10", "ten", "two weeks", "three weeks"]
OPENERS = [
    "",
    "",
    "",
    "",
    "hi, ",
    "Hi ",
    "hello, ",
    "hey ",
    "Hi there. ",
    "Good morning, ",
    "hey so ",
    "Um, ",
    "ok so ",
    "Hello! ",
]
NEG_EMOJI = [" 😡", " 😤", " 🙄", " 😞", " 😠", " 👎", " 😒", " 🤬", " :(", " >:(", " 😩"]
POS_EMOJI = [" 😊", " 🙂", " 😀", " 👍", " ❤️", " 🙏", " 🎉", " :)", " :D", " 😍", " 🥰", " ✨"]
NEU_EMOJI = [" 🙂", " 🤔", " :)", "", " 📦"]


def order_no(rng: random.Random) -> str:
    n = rng.randint(100001, 109999)
    return rng.choice([f"#{n}", str(n), f"order {n}", f"order #{n}"])


NEGATIVE = [
    # complaints about delays
    "my {item} was supposed to arrive {days} days ago and it's still not here",
    "where is my order?? it's been {days} days",
    "{order} still says processing after {days} days, this is ridiculous",
    "I've been waiting forever for my {item}, nobody tells me anything",
    "the tracking hasn't moved in a week. What is going on?",
    "you promised next day delivery and it took {days} days",
    "this is the third time I'm asking about {order}. still no answer",
    "delivery window came and went, no package, no email, nothing",
    "{carrier} marked it as delivered but there's nothing at my door",
    "I paid for express shipping and it's slower than standard. want my money back for that",
    "honestly the slowest delivery I've ever had from any shop",
    "it's been {days} days and the parcel is still 'in transit'. in transit where, the moon?",
    "I needed the {item} for a birthday that already happened. thanks for nothing",
    "{carrier} left my parcel in the rain and the box is soaked",
    # damaged / wrong
    "the {item} arrived broken",
    "got the wrong size AGAIN",
    "you sent me a {item} instead of what I ordered",
    "the {item} stopped working after two days, really poor quality",
    "box was crushed and the {item} inside is scratched all over",
    "half of my order is missing and the invoice says it was all shipped",
    "the {item} smells like chemicals, I can't use it",
    "the colour is nothing like the photos on your site, very disappointed",
    "item arrived used. there were someone else's hairs on it. disgusting",
    "the {item} I received is clearly a cheap knockoff",
    "the zip on the {item} broke the first time I used it",
    # refunds / money
    "I returned the {item} a month ago and still no refund",
    "you charged me twice for {order}!!",
    "why was my card charged when the order was cancelled?",
    "your refund policy is a joke",
    "still waiting on my refund, this is theft at this point",
    "I was promised a refund in 5 days, it's been {days}",
    "you took the money but the order never shipped",
    "the return label you sent doesn't even work",
    "hidden fees at checkout, not cool at all",
    "the price dropped the day after I bought it and you won't adjust it. never again",
    # service
    "your customer service is useless",
    "I've been on hold for 45 minutes",
    "nobody answers emails here, is anyone actually working?",
    "{person} hung up on me",
    "I keep getting copy paste answers that don't help",
    "this chatbot doesn't understand anything I say",
    "stop sending me the same FAQ link, it doesn't answer my question",
    "worst shopping experience I've had in years",
    "I'm done with this shop. cancelling my account",
    "really frustrated, I just want someone to fix this",
    "I've explained the problem four times already",
    "this is unacceptable",
    "I want to speak to a human, now",
    "you lost my package and now you're blaming me?",
    "the website keeps logging me out and deleted my cart. so annoying",
    "can't believe how bad this has been",
    "I'm extremely disappointed with how this was handled",
    "fix it or I'm disputing the charge with my bank",
    "I will be leaving a one star review everywhere",
    "tired of being ignored",
    "this is the last time I order from you",
    "you guys messed up my order and now want me to pay for the return shipping?",
    "it's insane that I have to chase you for something you got wrong",
    "my account got charged and the app crashed, now I have no order and no money",
    # sarcasm
    "oh great, another delay. love that for me",
    "wow, {days} days for a {item}. amazing service, really",
    "thanks for nothing I guess",
    "fantastic, the {item} arrived in pieces. just what I wanted",
    "brilliant, my refund 'is being processed' for the fifth week in a row",
    "love how you say 'we value your feedback' and then ignore it",
    "sure, keep telling me it's on the way. I totally believe you",
    "great job losing my parcel, truly impressive",
    "nice, charged twice. very generous of me",
    "oh perfect, the wrong colour again. third time's the charm right?",
    "so helpful. not.",
    "10/10 would not recommend",
    "yeah because waiting {days} days for an email reply is totally normal",
    "well that was a complete waste of my time, cheers",
    "another 'sorry for the inconvenience'. that fixes everything",
    "can't wait to wait another week I guess",
    # mixed, negative dominates
    "the {item} is nice but the delivery was a nightmare and nobody replied to me",
    "I usually love this shop but this time you really let me down",
    "thanks for answering, but this still doesn't solve my problem",
    "appreciate the apology but I still don't have my {item}",
    "the product is fine, the service is terrible",
    "good price, awful packaging, the {item} was dented",
    "I know it's not your fault exactly but I'm really fed up",
    "{person} was polite but nothing has actually been done",
    "I liked the first order but this one is a mess",
    "ok thank you but I'm still not happy about this",
]

POSITIVE = [
    # thanks
    "thank you so much, that fixed it",
    "thanks for the quick reply!",
    "great, thanks for your help",
    "awesome, appreciate it",
    "perfect, that's exactly what I needed",
    "you've been really helpful, thank you",
    "thanks a lot, have a great day",
    "cheers, that was fast",
    "brilliant, thanks for sorting it out so quickly",
    "thank you {person}, you were amazing",
    "really appreciate the help with {order}",
    "thanks! the refund just came through",
    "that's great news, thank you",
    "wonderful, thanks for letting me know",
    "thanks for being so patient with me",
    "you're a lifesaver, thank you",
    "much appreciated!",
    "thank you, that was way easier than I expected",
    "ok that worked, thank you!!",
    # happy with product / delivery
    "the {item} arrived today and I love it",
    "my {item} came a day early, super happy",
    "just got my {item}, it's even better than the pictures",
    "the {item} is fantastic, great quality",
    "really happy with my purchase",
    "packaging was lovely and the {item} is perfect",
    "fast delivery and everything was well packed, thanks",
    "the {item} fits perfectly, will order again",
    "best online shop I've used, honestly",
    "I'm so pleased with the {item}, my partner loves it too",
    "love the {item}!! ordering another one for my sister",
    "everything arrived in perfect condition",
    "the quality of the {item} is amazing for the price",
    "great experience from start to finish",
    "{carrier} was super friendly and the package arrived on time",
    "five stars, would definitely recommend you to friends",
    "I'm impressed, the {item} works like a charm",
    "delivery was quick and smooth, well done",
    "so glad I found this shop",
    "you guys are the best",
    "that was easy, love it",
    "the new {item} is exactly what I was looking for",
    "top service as always",
    "wow that was quick, the replacement {item} is already here",
    # problem solved, positive dominates
    "it was a bit late but it arrived in perfect shape, thanks",
    "had a small issue but {person} sorted it right away. great service",
    "I was worried at first but you handled it really well",
    "thanks for the refund, that was painless",
    "the first one was damaged but the replacement is perfect, thank you",
    "not gonna lie I was annoyed yesterday, but you fixed everything. thank you!",
    "it took a while but the support was great in the end",
    "the exchange went smoothly, really appreciate it",
    "thanks for the discount code, that was a nice surprise",
    "you didn't have to do that, thank you so much",
    "I got my money back already, that was fast",
    "thanks for updating my address so quickly",
    "great, the tracking finally shows it's out for delivery, thanks!",
    "the {item} is back in stock, yay",
    "love your customer service, always friendly",
    "you made my day",
    "happy customer here",
    "kudos to the team, really smooth experience",
    "finally a shop that actually answers, thank you",
    "this chatbot is actually helpful, nice one",
    "that's so kind, thank you for checking",
    "all good now, thanks a ton",
    "this is my third order and every time it's been great",
    "gift arrived on time for the birthday, she loved it",
    "easy return, refund was quick. very satisfied",
]

NEUTRAL = [
    # order status questions
    "where is my order {order}?",
    "can you check the status of {order}",
    "when will my {item} be delivered?",
    "has {order} shipped yet?",
    "what's the tracking number for my order",
    "which carrier do you use for deliveries?",
    "is it possible to change the delivery address for {order}?",
    "how long does standard shipping take",
    "do you deliver on weekends?",
    "can I pick up my order instead of having it delivered",
    "what time does {carrier} usually come",
    "do you ship to Canada?",
    "how much is express delivery",
    "I'd like to track a package",
    "could you tell me when {order} will arrive",
    # returns / refunds / payments
    "how do I return an item?",
    "what is your return policy",
    "can I exchange the {item} for a different size",
    "how long do refunds usually take",
    "I want to return the {item} from {order}",
    "do I need the original box to return something",
    "which payment methods do you accept?",
    "can I pay with paypal",
    "do you take gift cards",
    "I need an invoice for {order}",
    "can you send the invoice to my work email",
    "is there a fee for cancelling an order",
    "I'd like to cancel {order} please",
    "can I add an item to {order} before it ships",
    "how do I use a discount code",
    # account
    "how do I change my email address",
    "I forgot my password",
    "how can I delete my account",
    "I want to unsubscribe from the newsletter",
    "can I have two accounts with the same email?",
    "how do I update my phone number",
    "where can I see my past orders",
    # product questions
    "is the {item} available in black?",
    "does the {item} come with a warranty?",
    "what are the dimensions of the {item}",
    "when will the {item} be back in stock",
    "is the {item} machine washable",
    "can you recommend something similar to the {item}?",
    "do you have any {item} under $50",
    "what's the difference between the two {item} models",
    "is the {item} suitable for kids",
    "what material is the {item} made of",
    "are the {item} batteries included",
    "do you sell gift wrapping",
    "any recommendations for a birthday present?",
    "what goes well with the {item} I bought",
    # informational statements / replies
    "my order number is {order}",
    "the email on my account is jamie.r@example.com",
    "I ordered the {item} last Tuesday",
    "it's for {order}",
    "yes",
    "no, that's all",
    "ok",
    "the address is 12 Elm Street, Springfield",
    "I'll be home after 6pm",
    "I paid by card",
    "it was a gift for my brother",
    "I'm checking on behalf of my mother",
    "one moment, let me find the receipt",
    "hold on, checking",
    "not sure, let me look",
    "the size is medium",
    "I bought two of them",
    "same address as last time",
    "hi",
    "hello, I have a question",
    "can I talk to someone about an order",
    "I need help with {order}",
    "what are your opening hours?",
    "is there a phone number I can call",
    "do you have a physical store?",
    "I received an email about {order}, what does it mean?",
    "the package says delivered, I'll check with my neighbours",
    "the tracking says it's at the depot",
    "I just placed an order, how long until it ships?",
    "can I get the {item} delivered to a different address than my billing one",
    "is it ok if I return only one item from the order",
    "my {item} is arriving tomorrow according to the tracking",
    "what happens if I'm not home when {carrier} comes?",
    "I'm thinking of buying the {item}, any reviews?",
]

NO_OPENER = (
    "oh",
    "wow",
    "so ",
    "yeah",
    "well",
    "great",
    "fantastic",
    "brilliant",
    "love how",
    "nice",
    "sure",
    "10/10",
    "another",
    "can't wait",
    "hi",
    "hello",
    "yes",
    "no,",
    "ok",
    "hold",
    "one moment",
    "not sure",
    "thanks for nothing",
    "you made",
    "you guys",
    "happy customer",
    "much appreciated",
)
TAILS_NEG = [
    "",
    "",
    "",
    ".",
    "!",
    "!!",
    "...",
    "?!",
    ". Please fix this.",
    ". Seriously.",
    ". Not happy.",
    ". Sort it out.",
]
TAILS_POS = ["", "", "", ".", "!", "!!", " :)", ". Have a nice day!", ", you're great", ". Cheers"]
TAILS_NEU = ["", "", "", ".", "?", " please", ", thanks", " thank you", ". thx"]

TYPOS = {
    "the": ["teh", "th"],
    "please": ["pls", "plz", "pleas"],
    "thanks": ["thx", "thanx", "tahnks"],
    "thank you": ["thank u", "ty", "thankyou"],
    "you": ["u", "yuo"],
    "your": ["ur", "youre"],
    "received": ["recieved", "recived"],
    "delivery": ["delivry", "dlivery"],
    "order": ["oder", "ordr"],
    "refund": ["refun", "refudn"],
    "package": ["pakage", "packge"],
    "really": ["realy", "rly"],
    "because": ["bc", "cuz"],
    "still": ["stil"],
    "arrived": ["arived", "arrivd"],
    "great": ["gr8", "grate"],
}


def fill(template: str, rng: random.Random) -> str:
    text = template
    while "{item}" in text:
        text = text.replace("{item}", rng.choice(ITEMS), 1)
    return (
        (
            text.replace("{order}", order_no(rng))
            .replace("{days}", rng.choice(DAYS))
            .replace("{carrier}", rng.choice(CARRIERS))
            .replace("{person}", rng.choice(PEOPLE))
        )
        .replace("days days", "days")
        .replace("weeks days", "weeks")
    )


def noise(text: str, rng: random.Random, label: str) -> str:
    """Make a message look typed in a chat window: case, punctuation, typos, emoji."""
    if rng.random() < 0.25:
        for word, subs in TYPOS.items():
            if re.search(rf"\b{word}\b(?!')", text, re.I) and rng.random() < 0.5:
                text = re.sub(rf"\b{word}\b(?!')", rng.choice(subs), text, count=1, flags=re.I)
    if rng.random() < 0.2:
        text = text.replace("'", "")
    r = rng.random()
    if r < 0.35:
        text = text.lower()
    elif r < 0.75:
        text = text[:1].upper() + text[1:]
    elif r < 0.8 and label == "negative":
        text = text.upper()
    if rng.random() < 0.22:
        pool = {"negative": NEG_EMOJI, "positive": POS_EMOJI, "neutral": NEU_EMOJI}[label]
        text = text.rstrip(".") + rng.choice(pool)
    return text


def make(templates: list[str], tails: list[str], label: str, rng: random.Random, n: int) -> list[str]:
    out: set[str] = set()
    attempts = 0
    while len(out) < n and attempts < n * 50:
        attempts += 1
        text = fill(rng.choice(templates), rng)
        if not text.endswith(("?", "!", ".")):
            text += rng.choice(tails)
        opener = rng.choice(OPENERS)
        if opener and len(text) > 12 and not text.lower().startswith(NO_OPENER):
            text = opener + text[:1].lower() + text[1:]
        out.add(noise(text, rng, label).strip())
    return sorted(out)


def main() -> None:
    rng = random.Random(SEED)
    rows: list[tuple[str, str]] = []
    for label, templates, tails in (
        ("negative", NEGATIVE, TAILS_NEG),
        ("neutral", NEUTRAL, TAILS_NEU),
        ("positive", POSITIVE, TAILS_POS),
    ):
        rows += [(t, label) for t in make(templates, tails, label, rng, PER_LABEL)]
    rng.shuffle(rows)
    path = Path(__file__).with_name("messages.csv")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} messages to {path}")


if __name__ == "__main__":
    main()
