"""One test through a client generated from the live /openapi.json
(openapi-python-client, generated at test time, never committed): send an
identify and a track through the generated Segment operations, then read
the person back through the generated `get_person` and check what landed."""
import sys

from siyu_client import AuthenticatedClient
from siyu_client.api.default import get_person, segment_identify_post_v1_identify, segment_track_post_v1_track
from siyu_client.models.segment_identify_post_v1_identify_body import SegmentIdentifyPostV1IdentifyBody
from siyu_client.models.segment_track_post_v1_track_body import SegmentTrackPostV1TrackBody
from siyu_client.types import Unset

url, token = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)

identify = segment_identify_post_v1_identify.sync_detailed(
    client=client,
    body=SegmentIdentifyPostV1IdentifyBody.from_dict(
        {"userId": "王@例子.cn", "traits": {"city": "上海", "name": "王小明"}, "messageId": "client-identify-1"}
    ),
)
assert identify.status_code == 200, identify.content
assert identify.parsed.accepted == 1, identify.parsed
track = segment_track_post_v1_track.sync_detailed(
    client=client,
    body=SegmentTrackPostV1TrackBody.from_dict(
        {"userId": "王@例子.cn", "event": "Viewed Lipstick", "messageId": "client-track-1"}
    ),
)
assert track.status_code == 200 and track.parsed.accepted == 1, track.content

person = get_person.sync(id="user:王@例子.cn", client=client)
assert person is not None and not isinstance(person, Unset), person
assert "user:王@例子.cn" in person.identities, person.identities
assert person.events == 2, person.events
traits = person.traits.to_dict()
assert traits.get("city") == "上海" and traits.get("name") == "王小明", traits
print(f"generated client: identify + track sent, person {person.canonical_id} has {person.events} events and traits {traits}")
