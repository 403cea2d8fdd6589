#!/usr/bin/env python3
"""Writes a conversation workload as wire-format JSONL (stdout): the store
the inbox targets are measured on (issue 18: 1M persons, 1M messages).

  scripts/gen-conversations.py --persons 1000000 --messages 1000000 --seed 7 > conv.jsonl
  siyu import conv.jsonl --data-dir /tmp/conv

Every person has a WeCom identity and a name; a quarter also a Douyin one
(the same person). Messages go to random persons, in runs of one to six:
customers write (`comment`, on Douyin or WeCom), operators answer
(`message_sent` with `reply: true` and an `operator`), journeys message
(`message_sent` without), some conversations are resolved. Times fall in
the 60 days before --now (default: now). No numpy: the standard library only.
"""
import argparse
import json
import random
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--persons", type=int, default=1_000_000)
p.add_argument("--messages", type=int, default=1_000_000)
p.add_argument("--seed", type=int, default=7)
p.add_argument("--now", type=int, default=int(time.time()))
a = p.parse_args()
rng = random.Random(a.seed)
out = sys.stdout
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
ASKS = ["多少钱", "求资料", "有货吗", "什么时候发货", "能便宜点吗", "怎么用", "在吗", "退货怎么弄", "优惠券怎么领", "尺码偏大吗"]
ANSWERS = ["您好，正价 199 元，会员 159 元", "资料已发您，请查收", "有货的，今天下单明天发", "亲，已为您登记", "稍等，我帮您查一下"]
OPS = ["li", "wang", "zhang", "chen"]
start = a.now - 60 * 86400
w = out.write
for i in range(a.persons):
    ts = start + rng.randrange(60 * 86400)
    name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
    traits = {"name": name}
    if i % 5 == 0:
        traits["operator"] = OPS[i % len(OPS)]
    w(json.dumps({"ts": ts, "identity": f"wecom:wm{i}", "type": "identify", "traits": traits}, ensure_ascii=False) + "\n")
    if i % 4 == 0:
        w(json.dumps({"ts": ts + 1, "identity": f"wecom:wm{i}", "type": "identify", "ref": f"douyin:dy{i}"}) + "\n")
    if i % 7 == 0:
        w(json.dumps({"ts": ts + 60, "identity": f"wecom:wm{i}", "type": "purchase", "amount": rng.randrange(1000, 50000)}) + "\n")
left = a.messages
n = 0
while left > 0:
    i = rng.randrange(a.persons)
    ident = f"douyin:dy{i}" if i % 4 == 0 and rng.random() < 0.6 else f"wecom:wm{i}"
    ch = ident.split(":")[0]
    ts = start + rng.randrange(60 * 86400 - 3600)
    run = min(left, rng.randrange(1, 7))
    for k in range(run):
        n += 1
        ts += rng.randrange(5, 900)
        if k % 2 == 0:
            ev = {"id": f"m{n}", "ts": ts, "identity": ident, "type": "comment", "text": rng.choice(ASKS)}
        elif rng.random() < 0.8:
            ev = {"id": f"m{n}", "ts": ts, "identity": ident, "type": "message_sent", "channel": ch,
                  "properties": {"reply": True, "operator": OPS[i % len(OPS)], "text": rng.choice(ANSWERS)}}
        else:
            ev = {"id": f"m{n}", "ts": ts, "identity": f"wecom:wm{i}", "type": "message_sent",
                  "properties": {"journey": "welcome", "text": "欢迎加入，回复 1 领券"}}
        w(json.dumps(ev, ensure_ascii=False) + "\n")
    left -= run
    if rng.random() < 0.2:
        w(json.dumps({"id": f"r{n}", "ts": ts + 60, "identity": f"wecom:wm{i}", "type": "custom", "name": "conversation_resolved"}) + "\n")
