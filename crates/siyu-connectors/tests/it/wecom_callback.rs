//! WeCom callbacks as siyu events: each kind of callback, with the XML of
//! WeCom's documentation examples (客户联系 → 变更回调 → 事件格式, doc paths
//! 92130 / 96361; 微信客服 → 接收消息和事件, 94670), mapped by the pure
//! `map_callback`; and the XML reader's limits.

use siyu_connectors::wecom::callback::{
    kf_events, leave_events, map_callback, CallbackError, CallbackXml, KfMessage, KfPull,
    MAX_XML_BYTES,
};
use siyu_domain::wire::to_json;
use siyu_domain::EventType;

fn xml(body: &str) -> CallbackXml {
    CallbackXml::parse(&format!(
        "<xml>\n\t<ToUserName><![CDATA[toUser]]></ToUserName>\n\t<FromUserName><![CDATA[sys]]></FromUserName>\n\t<CreateTime>1403610513</CreateTime>\n\t<MsgType><![CDATA[event]]></MsgType>\n{body}\n</xml>"
    ))
    .expect("documented XML parses")
}

fn contact(change: &str, extra: &str) -> CallbackXml {
    xml(&format!(
        "\t<Event><![CDATA[change_external_contact]]></Event>\n\t<ChangeType><![CDATA[{change}]]></ChangeType>\n\t<UserID><![CDATA[zhangsan]]></UserID>\n\t<ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA]]></ExternalUserID>\n{extra}"
    ))
}

#[test]
fn add_external_contact_is_add_friend_with_operator_state_and_welcome_code() {
    for change in ["add_external_contact", "add_half_external_contact"] {
        let m = map_callback(&contact(
            change,
            "\t<State><![CDATA[teststate]]></State>\n\t<WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>",
        ))
        .unwrap();
        assert_eq!(m.kind, format!("change_external_contact/{change}"));
        assert_eq!(m.events.len(), 1);
        let e = &m.events[0];
        assert_eq!(e.event_type, EventType::AddFriend);
        assert_eq!(
            e.identity.as_str(),
            "wecom:woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA"
        );
        assert_eq!(e.channel.as_str(), "wecom");
        assert_eq!(e.ts, 1403610513);
        let p = e.properties.as_ref().unwrap();
        assert_eq!(p["operator"], "zhangsan");
        assert_eq!(p["state"], "teststate");
        assert_eq!(p["welcome_code"], "WELCOMECODE");
        assert_eq!(p["change_type"], change);
        assert!(e.id.as_deref().unwrap().starts_with("wecom/"));
    }
}

#[test]
fn a_retried_callback_maps_to_the_same_ids_and_a_later_one_to_new_ones() {
    let first = map_callback(&contact("add_external_contact", "")).unwrap();
    let again = map_callback(&contact("add_external_contact", "")).unwrap();
    assert_eq!(first.events[0].id, again.events[0].id);
    let later = CallbackXml::parse(
        "<xml><CreateTime>1403610514</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><UserID>zhangsan</UserID><ExternalUserID>woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA</ExternalUserID></xml>",
    )
    .unwrap();
    let later = map_callback(&later).unwrap();
    assert_ne!(first.events[0].id, later.events[0].id);
    // Another operator adding the same customer at the same second is
    // another event.
    let other = CallbackXml::parse(
        "<xml><CreateTime>1403610513</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><UserID>lisi</UserID><ExternalUserID>woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA</ExternalUserID></xml>",
    )
    .unwrap();
    assert_ne!(
        first.events[0].id,
        map_callback(&other).unwrap().events[0].id
    );
}

#[test]
fn the_two_deletions_are_kept_apart() {
    let removed = map_callback(&contact(
        "del_external_contact",
        "\t<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>",
    ))
    .unwrap();
    let e = &removed.events[0];
    assert_eq!(
        (e.event_type, e.name.as_deref()),
        (EventType::Custom, Some("friend_removed"))
    );
    let p = e.properties.as_ref().unwrap();
    assert_eq!(
        (&p["by"], &p["operator"], &p["source"]),
        (
            &"operator".into(),
            &"zhangsan".into(),
            &"DELETE_BY_TRANSFER".into()
        )
    );

    let left = map_callback(&contact("del_follow_user", "")).unwrap();
    let e = &left.events[0];
    assert_eq!(
        (e.event_type, e.name.as_deref()),
        (EventType::Custom, Some("unfriend")),
        "the engine's own exit: the customer left"
    );
    assert_eq!(e.properties.as_ref().unwrap()["by"], "customer");
    assert_ne!(removed.events[0].id, left.events[0].id);
}

#[test]
fn edits_and_failed_transfers_are_recorded() {
    let m = map_callback(&contact("edit_external_contact", "")).unwrap();
    assert_eq!(m.events[0].name.as_deref(), Some("wecom_contact_edited"));
    assert_eq!(
        m.events[0].properties.as_ref().unwrap()["operator"],
        "zhangsan"
    );

    let m = map_callback(&contact(
        "transfer_fail",
        "\t<FailReason><![CDATA[customer_refused]]></FailReason>",
    ))
    .unwrap();
    let e = &m.events[0];
    assert_eq!(e.name.as_deref(), Some("wecom_transfer_failed"));
    assert_eq!(
        e.properties.as_ref().unwrap()["fail_reason"],
        "customer_refused"
    );
}

fn chat(change: &str, extra: &str) -> CallbackXml {
    xml(&format!(
        "\t<Event><![CDATA[change_external_chat]]></Event>\n\t<ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId>\n\t<ChangeType><![CDATA[{change}]]></ChangeType>\n{extra}"
    ))
}

#[test]
fn group_members_join_and_leave_the_chat_customers_only() {
    let joined = map_callback(&chat(
        "update",
        "\t<UpdateDetail><![CDATA[add_member]]></UpdateDetail>\n\t<JoinScene>3</JoinScene>\n\t<QuitScene>0</QuitScene>\n\t<MemChangeCnt>3</MemChangeCnt>\n\t<MemChangeList>\n\t\t<Item><![CDATA[wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA]]></Item>\n\t\t<Item><![CDATA[woOgQhDgAAuXFJGwbve4g4iXknfOBBBB]]></Item>\n\t\t<Item>Jack</Item>\n\t</MemChangeList>\n\t<LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer>\n\t<CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer>",
    ))
    .unwrap();
    assert_eq!(joined.kind, "change_external_chat/update/add_member");
    let who: Vec<&str> = joined.events.iter().map(|e| e.identity.as_str()).collect();
    assert_eq!(
        who,
        [
            "wecom:wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA",
            "wecom:woOgQhDgAAuXFJGwbve4g4iXknfOBBBB"
        ]
    );
    for e in &joined.events {
        assert_eq!(e.event_type, EventType::JoinGroup);
        assert_eq!(e.group.as_deref(), Some("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"));
        let p = e.properties.as_ref().unwrap();
        assert_eq!(
            (&p["join_scene"], &p["scene"]),
            (&"3".into(), &"qr_code".into())
        );
        assert_eq!(p["mem_change_cnt"], "3");
    }
    assert_ne!(joined.events[0].id, joined.events[1].id);
    assert!(joined.note.unwrap().contains("1 member(s) of the corp"));

    let left = map_callback(&chat(
        "update",
        "\t<UpdateDetail><![CDATA[del_member]]></UpdateDetail>\n\t<JoinScene>0</JoinScene>\n\t<QuitScene>1</QuitScene>\n\t<MemChangeCnt>1</MemChangeCnt>\n\t<MemChangeList>\n\t\t<Item><![CDATA[wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA]]></Item>\n\t</MemChangeList>",
    ))
    .unwrap();
    let e = &left.events[0];
    assert_eq!(e.event_type, EventType::LeaveGroup);
    let p = e.properties.as_ref().unwrap();
    assert_eq!(
        (&p["quit_scene"], &p["scene"]),
        (&"1".into(), &"removed".into())
    );
}

#[test]
fn group_create_dismiss_and_other_updates() {
    let created = map_callback(&chat("create", "")).unwrap();
    assert!(created.events.is_empty() && created.note.is_some());
    let renamed = map_callback(&chat(
        "update",
        "\t<UpdateDetail><![CDATA[change_name]]></UpdateDetail>",
    ))
    .unwrap();
    assert!(renamed.events.is_empty());
    assert_eq!(renamed.kind, "change_external_chat/update/change_name");

    let dismiss_xml = chat("dismiss", "");
    let dismissed = map_callback(&dismiss_xml).unwrap();
    assert_eq!(
        dismissed.dismissed_group.as_deref(),
        Some("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA")
    );
    let members = ["wecom:wmA".to_string(), "douyin:x".to_string()];
    let leaves = leave_events("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", &members, &dismiss_xml).unwrap();
    assert_eq!(leaves.len(), 1, "only the wecom identities");
    assert_eq!(leaves[0].event_type, EventType::LeaveGroup);
    assert_eq!(leaves[0].identity.as_str(), "wecom:wmA");
    assert_eq!(leaves[0].properties.as_ref().unwrap()["scene"], "dismissed");
}

#[test]
fn tag_changes_and_member_messages_record_nothing() {
    let tag = map_callback(&xml(
        "\t<Event><![CDATA[change_external_tag]]></Event>\n\t<Id><![CDATA[TAG_ID]]></Id>\n\t<TagType><![CDATA[tag]]></TagType>\n\t<ChangeType><![CDATA[create]]></ChangeType>",
    ))
    .unwrap();
    assert_eq!(tag.kind, "change_external_tag/create");
    assert!(tag.events.is_empty() && tag.note.is_some());
    // Tencent's sample message (sbzhu/weworkapi_php callback/Sample.php):
    // an app message from a member.
    let text = CallbackXml::parse("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>").unwrap();
    let m = map_callback(&text).unwrap();
    assert_eq!(m.kind, "text");
    assert!(m.events.is_empty());
    assert!(m.note.unwrap().contains("member of the corp"));
}

#[test]
fn a_kf_callback_asks_for_a_pull_and_the_pulled_customer_texts_are_comments() {
    // 微信客服 → 接收消息和事件: the callback.
    let m = map_callback(&CallbackXml::parse("<xml>\n<ToUserName><![CDATA[ww12345678910]]></ToUserName>\n<CreateTime>1348831860</CreateTime>\n<MsgType><![CDATA[event]]></MsgType>\n<Event><![CDATA[kf_msg_or_event]]></Event>\n<Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>\n<OpenKfId><![CDATA[wkxxxxxxx]]></OpenKfId>\n</xml>").unwrap()).unwrap();
    assert_eq!(
        m.kf_pull,
        Some(KfPull {
            token: "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR".into(),
            open_kfid: Some("wkxxxxxxx".into())
        })
    );
    assert!(m.events.is_empty());
    // sync_msg's answer (the documented example's fields).
    let page: Vec<KfMessage> = serde_json::from_str(r#"[
        {"msgid": "from_msgid_4622416642169452483", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
         "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "send_time": 1615478585, "origin": 3,
         "servicer_userid": "Zhangsan", "msgtype": "text", "text": {"content": "你好，多少钱"}},
        {"msgid": "m2", "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
         "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "send_time": 1615478590, "origin": 5,
         "msgtype": "text", "text": {"content": "servicer's answer"}},
        {"msgid": "m3", "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw", "send_time": 1615478591,
         "origin": 3, "msgtype": "image", "image": {"media_id": "MEDIA"}}
    ]"#).unwrap();
    let (events, skipped) = kf_events(&page);
    assert_eq!(skipped, 2, "the servicer's message and the image");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_type, EventType::Comment);
    assert_eq!(
        e.identity.as_str(),
        "wecom:wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"
    );
    assert_eq!(e.text.as_deref(), Some("你好，多少钱"));
    assert_eq!(e.ts, 1615478585);
    assert_eq!(
        kf_events(&page).0[0].id,
        e.id,
        "a re-read message keeps its id"
    );
}

#[test]
fn what_cannot_be_stored_is_refused_naming_the_callback_field() {
    let bad = CallbackXml::parse("<xml><CreateTime>1403610513</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><ExternalUserID>wo has spaces</ExternalUserID></xml>").unwrap();
    match map_callback(&bad) {
        Err(CallbackError::Invalid { field, .. }) => assert_eq!(field, "ExternalUserID"),
        other => panic!("{other:?}"),
    }
    let no_customer = CallbackXml::parse("<xml><CreateTime>1403610513</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType></xml>").unwrap();
    assert_eq!(
        map_callback(&no_customer),
        Err(CallbackError::Missing("ExternalUserID"))
    );
    let bad_time = CallbackXml::parse("<xml><CreateTime>soon</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><ExternalUserID>wmA</ExternalUserID></xml>").unwrap();
    assert!(matches!(
        map_callback(&bad_time),
        Err(CallbackError::Invalid { field, .. }) if field == "CreateTime"
    ));
    // The events are wire-format events (they export and re-import).
    let ok = map_callback(&contact("add_external_contact", "")).unwrap();
    assert_eq!(to_json(&ok.events[0])["type"], "add_friend");
}

#[test]
fn the_xml_reader_has_limits() {
    let deep = format!("<xml>{}x{}</xml>", "<a>".repeat(3), "</a>".repeat(3));
    assert_eq!(CallbackXml::parse(&deep), Err(CallbackError::TooDeep));
    let big = format!("<xml><A>{}</A></xml>", "x".repeat(MAX_XML_BYTES));
    assert!(matches!(
        CallbackXml::parse(&big),
        Err(CallbackError::TooLarge(_))
    ));
    // Entities through a DTD (billion laughs) are refused outright.
    let dtd = r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml><A>&b;</A></xml>"#;
    assert!(matches!(
        CallbackXml::parse(dtd),
        Err(CallbackError::Xml(_))
    ));
    let many = format!("<xml>{}</xml>", "<A/>".repeat(5000));
    assert!(matches!(
        CallbackXml::parse(&many),
        Err(CallbackError::Xml(_))
    ));
    assert!(matches!(
        CallbackXml::parse("<html><A>1</A></html>"),
        Err(CallbackError::NotXmlRoot(_))
    ));
    assert!(matches!(
        CallbackXml::parse("not xml"),
        Err(CallbackError::Xml(_))
    ));
    // Fields read from CDATA and plain text alike; a list keeps its items.
    let x = CallbackXml::parse(
        "<xml><A><![CDATA[ cdata ]]></A><B>plain</B><L><Item>1</Item><Item>2</Item></L></xml>",
    )
    .unwrap();
    assert_eq!(
        (x.get("A"), x.get("B"), x.list("L")),
        (
            Some("cdata"),
            Some("plain"),
            &["1".to_string(), "2".to_string()][..]
        )
    );
}
