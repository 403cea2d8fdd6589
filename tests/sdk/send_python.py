"""Sends the compatibility scenario through one official Python SDK.

usage: send_python.py segment|rudder HOST WRITE_KEY PREFIX [gzip|plain|default]

The client is the library's own `Client`, configured with nothing but the
host, the key and (for Segment) `gzip`; every other setting is the
library's default. Exits 1 if the library reported any error.
"""

import json
import sys

lib, host, key, prefix, mode = sys.argv[1:6]
errors = []


def on_error(error, items):
    errors.append(f"{error!r} ({len(items)} messages)")


if lib == "segment":
    from segment.analytics import Client

    opts = {} if mode == "default" else {"gzip": mode == "gzip"}
    client = Client(key, host=host, on_error=on_error, **opts)
else:
    from rudderstack.analytics import Client

    client = Client(key, host=host, on_error=on_error)

user = f"{prefix}-王@例子.cn"
anon = f"{prefix}-anon"
campaign = {"source": "Xiaohongshu", "medium": "social", "name": "double11"}

client.identify(user, {"name": "张三", "city": "上海"}, anonymous_id=anon)
client.track(
    user,
    "Order Completed",
    {"revenue": 12.5, "currency": "CNY", "order_id": f"{prefix}-o1"},
    context={"campaign": campaign, "userAgent": f"sdk-test {lib}"},
    anonymous_id=anon,
)
client.page(user, "Shop", "Home", {"path": "/"})
client.screen(user, "App", "Cart", {"items": 2})
client.group(user, f"{prefix}-g", {"name": "Acme", "plan": "pro"})
client.alias(user, f"{prefix}-new")
client.flush()
client.join()
print(json.dumps({"lib": lib, "mode": mode, "errors": errors}))
sys.exit(1 if errors else 0)
