//! The lifecycle's tests: one simulated-clock test per timed path, and a property test.

use std::collections::HashMap;

use super::*;
use crate::api_error::ErrorKind;
use crate::lifecycle::refusals::{LARGE_EVENT_CLOSE_WINDOW, stream_closed};
use crate::mcp::sampling::CreateMessageResult;
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

fn limits(max_in_flight: usize, max_queued: usize) -> LifecycleLimits {
    LifecycleLimits {
        max_in_flight,
        max_queued,
        stream_wait: Duration::from_millis(300),
        session_idle: Duration::from_secs(120),
        liveness_interval: None,
        mcp_path: "/mcp".into(),
        max_resend_bytes: usize::MAX,
    }
}

/// A session whose client finished the handshake and declared `sampling`.
fn ready(limits: LifecycleLimits) -> SessionLifecycle {
    ready_with(limits, "2025-11-25")
}

/// The same, the client asking for protocol `version`.
fn ready_with(limits: LifecycleLimits, version: &str) -> SessionLifecycle {
    ready_as(limits, version, "c")
}

/// The same, the client calling itself `name`.
fn ready_as(limits: LifecycleLimits, version: &str, name: &str) -> SessionLifecycle {
    let mut machine = SessionLifecycle::new(
        McpSession::new(ServerInfo::sampling2api()),
        limits,
        Millis(0),
    );
    let reply = machine.client_message(
        Millis(0),
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":version,"capabilities":{"sampling":{}},
            "clientInfo":{"name":name,"version":"1"}}})
        .to_string()
        .as_bytes(),
    );
    assert!(reply.is_some_and(|reply| reply.contains("protocolVersion")));
    machine.client_message(
        Millis(0),
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert!(machine.can_sample());
    machine
}

fn events(machine: &mut SessionLifecycle) -> Vec<Event> {
    std::iter::from_fn(|| machine.poll_event()).collect()
}

/// Everything transmitted, priming events included.
fn all_transmits(machine: &mut SessionLifecycle) -> Vec<Transmit> {
    std::iter::from_fn(|| machine.poll_transmit()).collect()
}

/// What was transmitted besides priming events (tested on their own).
fn transmits(machine: &mut SessionLifecycle) -> Vec<Transmit> {
    all_transmits(machine)
        .into_iter()
        .filter(|t| !matches!(t, Transmit::Priming { .. }))
        .collect()
}

/// The id `Encode` handed out for `key`, from events already drained.
fn encode_id(events: &[Event], key: RequestKey) -> u64 {
    events
        .iter()
        .find_map(|event| match event {
            Event::Encode { key: k, id } if *k == key => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Encode for {key:?} in {events:?}"))
}

fn done(events: &[Event], key: RequestKey) -> Vec<&Result<CreateMessageResult, ApiError>> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Done {
                key: k, outcome, ..
            } if *k == key => Some(outcome),
            _ => None,
        })
        .collect()
}

fn error_of(events: &[Event], key: RequestKey) -> ApiError {
    let outcomes = done(events, key);
    assert_eq!(outcomes.len(), 1, "one Done for {key:?}: {events:?}");
    outcomes[0].clone().expect_err("an error")
}

fn answer(id: u64, text: &str) -> Vec<u8> {
    json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","content":{"type":"text","text":text},"model":"m"}})
        .to_string()
        .into_bytes()
}

fn cancellations(transmits: &[Transmit]) -> Vec<(u64, String)> {
    transmits
        .iter()
        .filter_map(|transmit| match transmit {
            Transmit::Message {
                text,
                request: None,
                ..
            } => {
                let value: Value = serde_json::from_str(text).ok()?;
                (value["method"] == "notifications/cancelled").then(|| {
                    (
                        value["params"]["requestId"].as_u64().unwrap_or(0),
                        value["params"]["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
            }
            _ => None,
        })
        .collect()
}

/// Submits at `now` and encodes at once (the request must get a slot); returns key and id.
fn submit_and_encode(machine: &mut SessionLifecycle, now: Millis) -> (RequestKey, u64) {
    let key = machine.submit(now, now.after(MINUTE)).unwrap();
    let id = encode_id(&events(machine), key);
    machine.encoded(now, key, format!("request {id}"));
    (key, id)
}

#[test]
fn a_request_goes_out_and_its_answer_ends_it_once() {
    let mut machine = ready(limits(2, 2));
    machine.stream_opened(Millis(0), None);
    let key = machine
        .submit(Millis(10), Millis(10).after(MINUTE))
        .unwrap();
    let first = events(&mut machine);
    let id = encode_id(&first, key);
    assert_eq!(machine.in_flight(), 1);
    machine.encoded(Millis(12), key, "the request".into());
    assert_eq!(
        transmits(&mut machine),
        vec![Transmit::Message {
            text: Arc::new("the request".to_string()),
            request: Some(key),
            cancels: None,
            event: EventId(2),
        }]
    );
    assert_eq!(events(&mut machine), vec![Event::Sent { key }]);
    assert_eq!(machine.pending_count(), 1);
    assert_eq!(machine.poll_timeout(), Some(Millis(60_010)));
    assert!(
        machine
            .client_message(Millis(40), &answer(id, "hi"))
            .is_none()
    );
    let ended = events(&mut machine);
    let [
        Event::Done {
            key: k,
            outcome: Ok(result),
            sampling,
        },
    ] = ended.as_slice()
    else {
        panic!("{ended:?}");
    };
    assert_eq!((*k, *sampling), (key, Some(Duration::from_millis(28))));
    assert_eq!(result.model.as_deref(), Some("m"));
    // A second answer with the same id reaches nobody.
    machine.client_message(Millis(41), &answer(id, "again"));
    assert!(events(&mut machine).is_empty());
    assert_eq!((machine.in_flight(), machine.pending_count()), (0, 0));
    // Nothing left to time but the session's idleness (the stream is open: nothing).
    assert_eq!(machine.poll_timeout(), None);
}

#[test]
fn a_vs_code_session_that_never_answered_points_at_its_consent_prompt() {
    let mut machine = ready_as(limits(1, 1), "2025-11-25", "Visual Studio Code");
    machine.stream_opened(Millis(0), None);
    assert!(machine.consent_may_be_pending());
    let (sent, id) = submit_and_encode(&mut machine, Millis(0));
    // One queued behind it, with an earlier deadline, then the sent one's.
    let queued = machine.submit(Millis(1), Millis(30_000)).unwrap();
    events(&mut machine);
    machine.handle_timeout(Millis(30_000));
    machine.handle_timeout(Millis(0).after(MINUTE));
    let ended = events(&mut machine);
    for key in [queued, sent] {
        let err = error_of(&ended, key);
        assert_eq!(err.status(), 504);
        assert!(
            err.message.contains("a notification in VS Code"),
            "{}",
            err.message
        );
        assert!(err.message.contains("sampling2api connect vscode --write"));
    }
    // A late answer (even to a request nobody waits for) shows the prompt was answered.
    machine.client_message(Millis(2).after(MINUTE), &answer(id, "late"));
    assert!(!machine.consent_may_be_pending());
    let (key, _) = submit_and_encode(&mut machine, Millis(3).after(MINUTE));
    machine.handle_timeout(Millis(3).after(MINUTE).after(MINUTE));
    let err = error_of(&events(&mut machine), key);
    assert_eq!(err.message, ApiError::deadline_passed(60_000).message);
    // Other clients never get the hint, and a denial ends the wait as an answer.
    let mut other = ready(limits(1, 1));
    other.stream_opened(Millis(0), None);
    assert!(!other.consent_may_be_pending());
    let mut denied = ready_as(limits(1, 1), "2025-11-25", "Visual Studio Code - Insiders");
    denied.stream_opened(Millis(0), None);
    let (key, id) = submit_and_encode(&mut denied, Millis(0));
    events(&mut denied);
    denied.client_message(
        Millis(5),
        json!({"jsonrpc":"2.0","id":id,"error":{"code":-32000,"message":"The user has denied permission to call this method."}})
            .to_string()
            .as_bytes(),
    );
    let err = error_of(&events(&mut denied), key);
    assert_eq!(err.status(), 403);
    assert!(
        err.message.contains("chat.mcp.serverSampling"),
        "{}",
        err.message
    );
    assert!(!denied.consent_may_be_pending());
}

#[test]
fn refusals_come_at_once_with_the_sessions_reason() {
    let mut fresh = SessionLifecycle::new(
        McpSession::new(ServerInfo::sampling2api()),
        limits(1, 0),
        Millis(0),
    );
    assert_eq!(
        fresh.submit(Millis(0), Millis(9)).unwrap_err().status(),
        503
    );
    let mut machine = ready(limits(1, 1));
    machine.submit(Millis(0), Millis(100)).unwrap();
    machine.submit(Millis(0), Millis(100)).unwrap();
    let busy = machine.submit(Millis(0), Millis(100)).unwrap_err();
    assert_eq!((busy.status(), busy.retry_after_secs), (429, Some(1)));
    assert_eq!((machine.in_flight(), machine.queued()), (1, 1));
    machine.close(Millis(1), "gone");
    let ended = machine.submit(Millis(2), Millis(100)).unwrap_err();
    assert_eq!(ended.message, session_ended().message);
    assert!(!machine.can_sample());
}

#[test]
fn queue_timeout_names_the_whole_deadline() {
    let mut machine = ready(limits(1, 4));
    machine.stream_opened(Millis(0), None);
    let (holder, _) = submit_and_encode(&mut machine, Millis(0));
    let queued = machine.submit(Millis(5), Millis(1_505)).unwrap();
    assert_eq!(machine.queued(), 1);
    events(&mut machine);
    machine.handle_timeout(Millis(1_504));
    assert!(events(&mut machine).is_empty());
    assert_eq!(machine.poll_timeout(), Some(Millis(1_505)));
    machine.handle_timeout(Millis(1_505));
    let ended = events(&mut machine);
    let err = error_of(&ended, queued);
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(
        err.message
            .contains("waited 1500 ms for the MCP session's in-flight limit"),
        "{}",
        err.message
    );
    assert!(done(&ended, holder).is_empty());
    assert_eq!((machine.in_flight(), machine.queued()), (1, 0));
}

#[test]
fn a_freed_slot_goes_to_the_oldest_queued_request() {
    let mut machine = ready(limits(1, 4));
    machine.stream_opened(Millis(0), None);
    let (holder, id) = submit_and_encode(&mut machine, Millis(0));
    let second = machine.submit(Millis(1), Millis(1).after(MINUTE)).unwrap();
    let third = machine.submit(Millis(2), Millis(2).after(MINUTE)).unwrap();
    events(&mut machine);
    machine.client_message(Millis(3), &answer(id, "one"));
    let ended = events(&mut machine);
    assert!(done(&ended, holder)[0].is_ok());
    let next_id = encode_id(&ended, second);
    assert!(next_id > id);
    assert!(
        ended
            .iter()
            .all(|e| !matches!(e, Event::Encode { key, .. } if *key == third))
    );
    assert_eq!((machine.in_flight(), machine.queued()), (1, 1));
    // The second caller leaves while encoding: the slot passes on to the third.
    machine.caller_gone(Millis(4), second);
    let ended = events(&mut machine);
    assert_eq!(error_of(&ended, second).message, caller_left().message);
    encode_id(&ended, third);
    // Its late encoding is dropped, and nothing was sent for it.
    machine.encoded(Millis(5), second, "late".into());
    assert!(
        transmits(&mut machine)
            .iter()
            .all(|t| !matches!(t, Transmit::Message { request: Some(k), .. } if *k == second))
    );
    assert_eq!((machine.in_flight(), machine.queued()), (1, 0));
}

#[test]
fn caller_gone_in_every_stage() {
    let mut machine = ready(limits(2, 2));
    // Queued: withdrawn, no slot changes hands.
    let (a, _) = {
        let a = machine.submit(Millis(0), Millis(0).after(MINUTE)).unwrap();
        (a, ())
    };
    let b = machine.submit(Millis(0), Millis(0).after(MINUTE)).unwrap();
    let queued = machine.submit(Millis(0), Millis(0).after(MINUTE)).unwrap();
    events(&mut machine);
    machine.caller_gone(Millis(1), queued);
    let ended = events(&mut machine);
    error_of(&ended, queued);
    assert_eq!((machine.in_flight(), machine.queued()), (2, 0));
    // Waiting for a stream: forgotten, no notice.
    machine.encoded(Millis(2), a, "a".into());
    machine.caller_gone(Millis(3), a);
    error_of(&events(&mut machine), a);
    assert!(transmits(&mut machine).is_empty());
    // Sent: cancelled at the client with the caller's reason.
    machine.encoded(Millis(4), b, "b".into());
    let generation = machine.stream_opened(Millis(5), None);
    assert_eq!(generation.get(), 1);
    let sent = transmits(&mut machine);
    assert_eq!(sent.len(), 1);
    let b_id = machine.next_request_id() - 1;
    machine.caller_gone(Millis(6), b);
    let ended = events(&mut machine);
    assert_eq!(error_of(&ended, b).message, caller_left().message);
    let notices = transmits(&mut machine);
    assert_eq!(
        cancellations(&notices),
        vec![(b_id, CANCELLED_CALLER_LEFT.to_string())]
    );
    // The notice names the request, for a driver still holding its message unwritten.
    assert!(
        matches!(&notices[..], [Transmit::Message { request: None, cancels: Some(k), .. }] if *k == b)
    );
    // Its late answer is ignored; a second caller_gone changes nothing.
    machine.client_message(Millis(7), &answer(b_id, "late"));
    machine.caller_gone(Millis(8), b);
    assert!(events(&mut machine).is_empty());
    assert!(transmits(&mut machine).is_empty());
    assert_eq!((machine.in_flight(), machine.pending_count()), (0, 0));
}

#[test]
fn stream_wait_expires_with_the_configured_wait_named() {
    let mut machine = ready(limits(2, 0));
    let key = machine
        .submit(Millis(100), Millis(100).after(MINUTE))
        .unwrap();
    events(&mut machine);
    machine.encoded(Millis(100), key, "x".into());
    assert!(transmits(&mut machine).is_empty());
    assert_eq!(machine.poll_timeout(), Some(Millis(400)));
    machine.handle_timeout(Millis(399));
    assert!(events(&mut machine).is_empty());
    machine.handle_timeout(Millis(400));
    let err = error_of(&events(&mut machine), key);
    assert_eq!(err.status(), 503);
    assert!(
        err.message.contains("(GET /mcp)") && err.message.contains("waited 300 ms"),
        "{}",
        err.message
    );
    assert_eq!(machine.in_flight(), 0);
}

#[test]
fn a_deadline_shorter_than_the_stream_wait_wins() {
    let mut machine = ready(limits(2, 0));
    let key = machine.submit(Millis(0), Millis(200)).unwrap();
    events(&mut machine);
    machine.encoded(Millis(0), key, "x".into());
    assert_eq!(machine.poll_timeout(), Some(Millis(200)));
    machine.handle_timeout(Millis(200));
    let err = error_of(&events(&mut machine), key);
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.message.contains("200 ms"), "{}", err.message);
}

#[test]
fn a_reconnect_carries_the_waiting_requests_in_order() {
    let mut machine = ready(limits(4, 0));
    let first = machine.stream_opened(Millis(0), None);
    machine.stream_closed(Millis(1), first);
    let mut keys = Vec::new();
    for at in 2..5 {
        let key = machine
            .submit(Millis(at), Millis(at).after(MINUTE))
            .unwrap();
        events(&mut machine);
        machine.encoded(Millis(at), key, format!("m{at}"));
        keys.push(key);
    }
    assert!(transmits(&mut machine).is_empty());
    let second = machine.stream_opened(Millis(100), None);
    assert_ne!(first, second);
    let texts: Vec<String> = transmits(&mut machine)
        .into_iter()
        .filter_map(|t| match t {
            Transmit::Message { text, .. } => Some(text.to_string()),
            Transmit::Priming { .. } | Transmit::Ping => None,
        })
        .collect();
    assert_eq!(texts, vec!["m2", "m3", "m4"]);
    assert_eq!(machine.pending_count(), 3);
    // Now they wait for their deadlines, not the stream wait.
    assert_eq!(machine.poll_timeout(), Some(Millis(60_002)));
    machine.handle_timeout(Millis(1_000));
    assert!(
        events(&mut machine)
            .iter()
            .all(|e| matches!(e, Event::Sent { .. }))
    );
}

#[test]
fn a_closed_stream_fails_what_it_carried_and_an_old_one_fails_nothing() {
    let mut machine = ready(limits(4, 0));
    let old = machine.stream_opened(Millis(0), None);
    let (on_old, _) = submit_and_encode(&mut machine, Millis(1));
    let current = machine.stream_opened(Millis(2), None);
    let (on_current, _) = submit_and_encode(&mut machine, Millis(3));
    // One not sent yet: it keeps waiting for the next stream.
    let unsent = machine.submit(Millis(4), Millis(4).after(MINUTE)).unwrap();
    events(&mut machine);
    transmits(&mut machine);
    // The replaced stream's end is old news.
    machine.stream_closed(Millis(5), old);
    assert!(events(&mut machine).is_empty());
    assert!(machine.has_stream());
    machine.stream_closed(Millis(6), current);
    let ended = events(&mut machine);
    assert_eq!(error_of(&ended, on_old).message, stream_closed().message);
    assert_eq!(
        error_of(&ended, on_current).message,
        stream_closed().message
    );
    assert!(done(&ended, unsent).is_empty());
    // No notices: there is no stream to carry them.
    assert!(transmits(&mut machine).is_empty());
    machine.encoded(Millis(7), unsent, "u".into());
    machine.stream_opened(Millis(8), None);
    assert_eq!(transmits(&mut machine).len(), 1);
    assert_eq!(machine.pending_count(), 1);
}

/// The messages among `transmits`: (text, request, event id).
fn messages(transmits: &[Transmit]) -> Vec<(String, Option<RequestKey>, u64)> {
    transmits
        .iter()
        .filter_map(|transmit| match transmit {
            Transmit::Message {
                text,
                request,
                event,
                ..
            } => Some((text.to_string(), *request, event.0)),
            _ => None,
        })
        .collect()
}

fn ok_once(events: &[Event], key: RequestKey) {
    let outcomes = done(events, key);
    assert_eq!(outcomes.len(), 1, "one Done for {key:?}: {events:?}");
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
}

#[test]
fn a_stream_opens_with_a_priming_event_and_ids_rise_across_generations() {
    let mut machine = ready(limits(4, 0));
    let first = machine.stream_opened(Millis(0), None);
    assert_eq!(
        all_transmits(&mut machine),
        vec![Transmit::Priming { event: EventId(1) }]
    );
    let (a, a_id) = submit_and_encode(&mut machine, Millis(1));
    assert_eq!(
        messages(&all_transmits(&mut machine)),
        vec![(format!("request {a_id}"), Some(a), 2)]
    );
    // A replaced stream's successor goes on counting, and so does a closed one's.
    let second = machine.stream_opened(Millis(2), None);
    machine.stream_closed(Millis(3), first);
    assert_eq!(
        all_transmits(&mut machine),
        vec![Transmit::Priming { event: EventId(3) }]
    );
    machine.caller_gone(Millis(4), a);
    let notice = all_transmits(&mut machine);
    assert_eq!(cancellations(&notice).len(), 1);
    assert_eq!(messages(&notice)[0].2, 4);
    machine.stream_closed(Millis(5), second);
    machine.stream_opened(Millis(6), None);
    assert_eq!(
        all_transmits(&mut machine),
        vec![Transmit::Priming { event: EventId(5) }]
    );
    assert_eq!(machine.next_event_id(), 6);
}

#[test]
fn clients_before_2025_11_25_get_no_priming_event() {
    let mut machine = ready_with(limits(2, 0), "2025-06-18");
    machine.stream_opened(Millis(0), None);
    assert!(all_transmits(&mut machine).is_empty());
    let (key, _) = submit_and_encode(&mut machine, Millis(1));
    // Their messages still carry ids, and they can resume.
    assert_eq!(messages(&all_transmits(&mut machine))[0].2, 1);
    machine.stream_opened(Millis(2), Some(EventId(0)));
    assert_eq!(
        messages(&all_transmits(&mut machine)),
        vec![(
            format!("request {}", machine.next_request_id() - 1),
            Some(key),
            2
        )]
    );
}

#[test]
fn a_replaced_streams_unseen_requests_are_sent_again_after_last_event_id() {
    let mut machine = ready(limits(4, 0));
    let old = machine.stream_opened(Millis(0), None);
    let (a, a_id) = submit_and_encode(&mut machine, Millis(1));
    let (b, b_id) = submit_and_encode(&mut machine, Millis(2));
    let (c, c_id) = submit_and_encode(&mut machine, Millis(3));
    // Priming 1, a 2, b 3, c 4.
    assert_eq!(
        messages(&all_transmits(&mut machine))
            .iter()
            .map(|m| m.2)
            .collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    events(&mut machine);
    // The old stream died unnoticed after the client saw `a`; it reconnects.
    machine.stream_opened(Millis(1_000), Some(EventId(2)));
    assert_eq!(
        all_transmits(&mut machine),
        vec![
            Transmit::Priming { event: EventId(5) },
            Transmit::Message {
                text: format!("request {b_id}").into(),
                request: Some(b),
                cancels: None,
                event: EventId(6),
            },
            Transmit::Message {
                text: format!("request {c_id}").into(),
                request: Some(c),
                cancels: None,
                event: EventId(7),
            },
        ]
    );
    // Not a new request: no second `Sent`, the same deadline, still pending.
    assert!(events(&mut machine).is_empty());
    assert_eq!(machine.pending_count(), 3);
    assert_eq!(machine.poll_timeout(), Some(Millis(1).after(MINUTE)));
    // The old stream's end, learnt late, changes nothing.
    machine.stream_closed(Millis(1_001), old);
    assert!(events(&mut machine).is_empty());
    // Each answer ends its request once; a second answer to a resent one reaches nobody.
    for (key, id) in [(a, a_id), (b, b_id), (c, c_id)] {
        machine.client_message(Millis(1_500), &answer(id, "ok"));
        let ended = events(&mut machine);
        ok_once(&ended, key);
        let Some(Event::Done { sampling, .. }) = ended.first() else {
            panic!("{ended:?}");
        };
        // The sampling time runs from the first send.
        assert!(sampling.is_some_and(|d| d >= Duration::from_millis(1_497)));
        machine.client_message(Millis(1_501), &answer(id, "again"));
        assert!(events(&mut machine).is_empty());
    }
    assert_eq!((machine.in_flight(), machine.pending_count()), (0, 0));
}

#[test]
fn a_resent_request_resumed_again_goes_by_its_latest_copy() {
    let mut machine = ready(limits(2, 0));
    machine.stream_opened(Millis(0), None);
    let (key, id) = submit_and_encode(&mut machine, Millis(1));
    all_transmits(&mut machine);
    machine.stream_opened(Millis(2), Some(EventId(1)));
    // Priming 3, the copy 4.
    assert_eq!(messages(&all_transmits(&mut machine))[0].2, 4);
    // The client saw the copy this time: nothing more.
    machine.stream_opened(Millis(3), Some(EventId(4)));
    assert_eq!(
        all_transmits(&mut machine),
        vec![Transmit::Priming { event: EventId(5) }]
    );
    // It saw only the priming event of the last stream: one more copy.
    machine.stream_opened(Millis(4), Some(EventId(3)));
    let again = all_transmits(&mut machine);
    assert_eq!(
        messages(&again),
        vec![(format!("request {id}"), Some(key), 7)]
    );
    // Its deadline cancels it at the client once, as any sent request.
    machine.handle_timeout(Millis(1).after(MINUTE));
    assert_eq!(
        error_of(&events(&mut machine), key).kind,
        ErrorKind::Timeout
    );
    assert_eq!(cancellations(&transmits(&mut machine)).len(), 1);
}

#[test]
fn requests_at_or_below_last_event_id_are_not_sent_again_and_their_answers_count() {
    let mut machine = ready(limits(4, 0));
    machine.stream_opened(Millis(0), None);
    let (a, a_id) = submit_and_encode(&mut machine, Millis(1));
    let (b, b_id) = submit_and_encode(&mut machine, Millis(2));
    all_transmits(&mut machine);
    events(&mut machine);
    machine.stream_opened(Millis(10), Some(EventId(3)));
    assert_eq!(
        all_transmits(&mut machine),
        vec![Transmit::Priming { event: EventId(4) }]
    );
    assert_eq!(machine.pending_count(), 2);
    machine.client_message(Millis(11), &answer(b_id, "b"));
    machine.client_message(Millis(12), &answer(a_id, "a"));
    let ended = events(&mut machine);
    ok_once(&ended, a);
    ok_once(&ended, b);
}

#[test]
fn without_last_event_id_or_with_one_never_handed_out_nothing_is_sent_again() {
    let mut machine = ready(limits(4, 0));
    machine.stream_opened(Millis(0), None);
    let (a, a_id) = submit_and_encode(&mut machine, Millis(1));
    all_transmits(&mut machine);
    events(&mut machine);
    for resume_after in [None, Some(EventId(3)), Some(EventId(u64::MAX))] {
        machine.stream_opened(Millis(10), resume_after);
        assert!(
            messages(&all_transmits(&mut machine)).is_empty(),
            "{resume_after:?}"
        );
    }
    // The request keeps waiting, and its answer still counts.
    assert_eq!(machine.pending_count(), 1);
    machine.client_message(Millis(11), &answer(a_id, "a"));
    ok_once(&events(&mut machine), a);
}

#[test]
fn what_is_not_kept_for_resending_fails_at_once_when_the_client_missed_it() {
    let small = "request 1".len();
    let mut machine = ready(LifecycleLimits {
        // Room for one small message: the second small one is not kept.
        max_resend_bytes: small,
        ..limits(4, 0)
    });
    machine.stream_opened(Millis(0), None);
    // Priming 1; the large request 2, a 3, b 4.
    let large = machine.submit(Millis(1), Millis(1).after(MINUTE)).unwrap();
    let large_id = encode_id(&events(&mut machine), large);
    machine.encoded(Millis(1), large, "x".repeat(RESEND_MAX_EVENT_BYTES + 1));
    let (a, a_id) = submit_and_encode(&mut machine, Millis(2));
    let (b, _) = submit_and_encode(&mut machine, Millis(3));
    assert_eq!((large_id, a_id), (1, 2));
    all_transmits(&mut machine);
    events(&mut machine);
    // The client saw only the priming event.
    machine.stream_opened(Millis(10), Some(EventId(1)));
    // `a` is sent again; the large one and `b` fail now instead of at their deadline: `b`
    // with the stream-closed error, the large one explained (see LargeEvents).
    assert_eq!(
        messages(&all_transmits(&mut machine)),
        vec![(format!("request {a_id}"), Some(a), 6)]
    );
    let ended = events(&mut machine);
    let explained = error_of(&ended, large);
    assert!(
        explained.message.contains("max_sse_event_size"),
        "{explained:?}"
    );
    assert!(!explained.retryable);
    assert_eq!(error_of(&ended, b), stream_closed());
    assert_eq!(ended.len(), 2, "{ended:?}");
    // Their late answers reach nobody; `a` still ends once, and its answer frees the budget.
    machine.client_message(Millis(11), &answer(large_id, "late"));
    assert!(events(&mut machine).is_empty());
    machine.client_message(Millis(12), &answer(a_id, "a"));
    ok_once(&events(&mut machine), a);
    assert_eq!(machine.kept_bytes, 0);
    let (c, c_id) = submit_and_encode(&mut machine, Millis(13));
    all_transmits(&mut machine);
    events(&mut machine);
    machine.stream_opened(Millis(20), Some(EventId(6)));
    assert_eq!(
        messages(&all_transmits(&mut machine)),
        vec![(format!("request {c_id}"), Some(c), 9)]
    );
}

/// A message whose event is over the common cap (`RESEND_MAX_EVENT_BYTES`).
fn large_message(id: u64) -> String {
    format!("request {id} {}", "x".repeat(RESEND_MAX_EVENT_BYTES))
}

#[test]
fn a_stream_closing_under_a_large_event_is_explained_and_refuses_as_large_ones_after() {
    let mut machine = ready(limits(4, 0));
    let first = machine.stream_opened(Millis(0), None);
    let a = machine.submit(Millis(1), Millis(1).after(MINUTE)).unwrap();
    let a_id = encode_id(&events(&mut machine), a);
    machine.encoded(Millis(1), a, large_message(a_id));
    // `b`, as large, is still being encoded when the stream closes under `a`.
    let b = machine.submit(Millis(2), Millis(2).after(MINUTE)).unwrap();
    let b_id = encode_id(&events(&mut machine), b);
    all_transmits(&mut machine);
    events(&mut machine);
    machine.stream_closed(Millis(200), first);
    let err = error_of(&events(&mut machine), a);
    assert_eq!(err.status(), 503);
    assert!(!err.retryable);
    assert!(err.message.contains("max_sse_event_size"), "{err:?}");
    assert_eq!(machine.large_events(), {
        let mut expected = LargeEvents::default();
        expected.outcome(stream_closed(), event_size(large_message(a_id).len()));
        expected
    });
    // `b` is refused when it would go out, without reaching the client's new stream; a
    // small request still goes.
    machine.encoded(Millis(300), b, large_message(b_id));
    machine.stream_opened(Millis(1_000), None);
    let refused = error_of(&events(&mut machine), b);
    assert_eq!(refused.status(), 413);
    assert!(!refused.retryable);
    let (c, c_id) = submit_and_encode(&mut machine, Millis(1_001));
    assert_eq!(
        messages(&all_transmits(&mut machine)),
        vec![(format!("request {c_id}"), Some(c), 4)]
    );
    // The memory outlives the process on a driver that stores it.
    let resumed = SessionLifecycle::resume(
        ServerInfo::sampling2api(),
        ResumedFacts {
            client: machine.client().cloned().unwrap(),
            ready: true,
            next_request_id: machine.next_request_id(),
            next_event_id: machine.next_event_id(),
            large_events: machine.large_events(),
            answered: machine.session().answered(),
        },
        limits(4, 0),
        Millis(2_000),
    );
    assert_eq!(resumed.large_events(), machine.large_events());
}

#[test]
fn a_close_long_after_a_large_event_is_not_blamed_on_its_size() {
    let mut machine = ready(limits(4, 0));
    let stream = machine.stream_opened(Millis(0), None);
    let a = machine.submit(Millis(1), Millis(1).after(MINUTE)).unwrap();
    let a_id = encode_id(&events(&mut machine), a);
    machine.encoded(Millis(1), a, large_message(a_id));
    events(&mut machine);
    machine.stream_closed(
        Millis(1)
            .after(LARGE_EVENT_CLOSE_WINDOW)
            .after(Duration::from_millis(1)),
        stream,
    );
    assert_eq!(error_of(&events(&mut machine), a), stream_closed());
    assert_eq!(machine.large_events(), LargeEvents::default());
}

#[test]
fn a_request_waiting_for_a_stream_goes_out_once_on_a_resumed_one() {
    let mut machine = ready(limits(2, 0));
    let key = machine.submit(Millis(0), Millis(0).after(MINUTE)).unwrap();
    events(&mut machine);
    machine.encoded(Millis(0), key, "w".into());
    machine.stream_opened(Millis(1), Some(EventId(0)));
    assert_eq!(
        all_transmits(&mut machine),
        vec![
            Transmit::Priming { event: EventId(1) },
            Transmit::Message {
                text: Arc::new("w".to_string()),
                request: Some(key),
                cancels: None,
                event: EventId(2),
            },
        ]
    );
}

#[test]
fn last_event_id_parses_strictly() {
    assert_eq!(EventId::parse("7"), Some(EventId(7)));
    assert_eq!(EventId::parse(" 0042 "), Some(EventId(42)));
    assert_eq!(
        EventId::parse("18446744073709551615"),
        Some(EventId(u64::MAX))
    );
    for bad in [
        "",
        " ",
        "-1",
        "+1",
        "1.0",
        "1e3",
        "0x10",
        "abc",
        "\u{0663}",
        "18446744073709551616",
        "000000000000000000001",
        "1 2",
        "\u{fffd}",
    ] {
        assert_eq!(EventId::parse(bad), None, "{bad:?}");
    }
    assert_eq!(EventId(12).to_string(), "12");
}

#[test]
fn a_deadline_cancels_at_the_client_and_the_late_answer_is_ignored() {
    let mut machine = ready(limits(1, 1));
    machine.stream_opened(Millis(0), None);
    let key = machine.submit(Millis(0), Millis(3_000)).unwrap();
    let id = encode_id(&events(&mut machine), key);
    machine.encoded(Millis(1), key, "x".into());
    let queued = machine.submit(Millis(2), Millis(2).after(MINUTE)).unwrap();
    events(&mut machine);
    transmits(&mut machine);
    machine.handle_timeout(Millis(3_000));
    let ended = events(&mut machine);
    let err = error_of(&ended, key);
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.message.contains("within 3 s"), "{}", err.message);
    let notices = transmits(&mut machine);
    assert_eq!(
        cancellations(&notices),
        vec![(id, CANCELLED_DEADLINE.to_string())]
    );
    assert!(matches!(&notices[..], [Transmit::Message { cancels: Some(k), .. }] if *k == key));
    // The slot went to the queued request.
    encode_id(&ended, queued);
    machine.client_message(Millis(3_001), &answer(id, "late"));
    assert!(done(&events(&mut machine), key).is_empty());
}

#[test]
fn a_deadline_during_encoding_ends_it_without_a_notice() {
    let mut machine = ready(limits(1, 0));
    machine.stream_opened(Millis(0), None);
    let key = machine.submit(Millis(0), Millis(50)).unwrap();
    events(&mut machine);
    machine.handle_timeout(Millis(50));
    assert_eq!(
        error_of(&events(&mut machine), key).kind,
        ErrorKind::Timeout
    );
    machine.encoded(Millis(60), key, "late".into());
    assert!(transmits(&mut machine).is_empty());
    assert_eq!(machine.in_flight(), 0);
}

#[test]
fn failed_encoding_and_undeliverable_messages_end_without_a_notice() {
    let mut machine = ready(limits(2, 0));
    machine.stream_opened(Millis(0), None);
    let key = machine.submit(Millis(0), Millis(0).after(MINUTE)).unwrap();
    events(&mut machine);
    machine.encode_failed(Millis(1), key, ApiError::api("no"));
    assert_eq!(error_of(&events(&mut machine), key).message, "no");
    let (sent, id) = submit_and_encode(&mut machine, Millis(2));
    transmits(&mut machine);
    events(&mut machine);
    machine.undeliverable(Millis(3), sent, ApiError::unavailable("full"));
    assert_eq!(error_of(&events(&mut machine), sent).message, "full");
    assert!(transmits(&mut machine).is_empty());
    machine.client_message(Millis(4), &answer(id, "late"));
    assert!(events(&mut machine).is_empty());
    assert_eq!((machine.in_flight(), machine.pending_count()), (0, 0));
}

#[test]
fn an_idle_session_without_a_stream_expires_once() {
    let mut machine = ready(limits(1, 0));
    assert_eq!(machine.poll_timeout(), Some(Millis(120_000)));
    // Activity moves it.
    machine.client_message(
        Millis(50_000),
        br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#,
    );
    assert_eq!(machine.poll_timeout(), Some(Millis(170_000)));
    // An open stream or a request holds it off.
    let generation = machine.stream_opened(Millis(60_000), None);
    assert_eq!(machine.poll_timeout(), None);
    machine.stream_closed(Millis(70_000), generation);
    let key = machine
        .submit(Millis(80_000), Millis(80_000).after(MINUTE))
        .unwrap();
    assert_eq!(machine.poll_timeout(), Some(Millis(140_000)));
    machine.caller_gone(Millis(90_000), key);
    events(&mut machine);
    assert_eq!(machine.poll_timeout(), Some(Millis(210_000)));
    machine.handle_timeout(Millis(209_999));
    assert!(events(&mut machine).is_empty());
    machine.handle_timeout(Millis(210_000));
    assert_eq!(events(&mut machine), vec![Event::Expired]);
    machine.handle_timeout(Millis(400_000));
    assert!(events(&mut machine).is_empty());
    assert_eq!(machine.poll_timeout(), None);
}

#[test]
fn liveness_pings_only_while_a_request_is_sent() {
    let mut machine = ready(LifecycleLimits {
        liveness_interval: Some(Duration::from_secs(5)),
        ..limits(2, 0)
    });
    let generation = machine.stream_opened(Millis(0), None);
    assert_eq!(machine.poll_timeout(), None, "no request: no ping");
    let (key, id) = submit_and_encode(&mut machine, Millis(1_000));
    transmits(&mut machine);
    assert_eq!(machine.poll_timeout(), Some(Millis(6_000)));
    machine.handle_timeout(Millis(6_000));
    assert_eq!(transmits(&mut machine), vec![Transmit::Ping]);
    assert_eq!(machine.poll_timeout(), Some(Millis(11_000)));
    machine.handle_timeout(Millis(11_000));
    assert_eq!(transmits(&mut machine), vec![Transmit::Ping]);
    machine.client_message(Millis(12_000), &answer(id, "ok"));
    assert!(done(&events(&mut machine), key)[0].is_ok());
    // The armed ping finds nothing to keep alive and stops.
    machine.handle_timeout(Millis(16_000));
    assert!(transmits(&mut machine).is_empty());
    assert_eq!(machine.poll_timeout(), None);
    // Sent, then the stream goes: no pings without a stream.
    let (_, _) = submit_and_encode(&mut machine, Millis(20_000));
    machine.stream_closed(Millis(20_001), generation);
    events(&mut machine);
    transmits(&mut machine);
    machine.handle_timeout(Millis(25_000));
    assert!(transmits(&mut machine).is_empty());
}

#[test]
fn close_ends_every_request_once_with_the_reason() {
    let mut machine = ready(limits(1, 2));
    machine.stream_opened(Millis(0), None);
    let (sent, id) = submit_and_encode(&mut machine, Millis(0));
    let queued = machine.submit(Millis(1), Millis(1).after(MINUTE)).unwrap();
    events(&mut machine);
    transmits(&mut machine);
    machine.close(Millis(2), "the MCP client ended its session");
    let ended = events(&mut machine);
    for key in [sent, queued] {
        let err = error_of(&ended, key);
        assert_eq!(
            (err.status(), err.message.as_str()),
            (503, "the MCP client ended its session")
        );
    }
    assert_eq!(ended.len(), 2);
    machine.client_message(Millis(3), &answer(id, "late"));
    machine.handle_timeout(Millis(1_000_000));
    machine.close(Millis(4), "again");
    assert!(events(&mut machine).is_empty());
    assert_eq!(
        (
            machine.in_flight(),
            machine.queued(),
            machine.pending_count()
        ),
        (0, 0, 0)
    );
    assert_eq!(machine.poll_timeout(), None);
    assert!(machine.is_closed() && !machine.has_stream());
}

#[test]
fn resumed_sessions_continue_their_ids() {
    let facts = ready(limits(1, 0)).client().cloned().unwrap();
    let mut machine = SessionLifecycle::resume(
        ServerInfo::sampling2api(),
        ResumedFacts {
            client: facts,
            ready: true,
            next_request_id: 41,
            next_event_id: 500,
            large_events: LargeEvents::default(),
            answered: false,
        },
        limits(1, 0),
        Millis(0),
    );
    let key = machine.submit(Millis(0), Millis(10)).unwrap();
    assert_eq!(encode_id(&events(&mut machine), key), 41);
    assert_eq!(machine.next_request_id(), 42);
    // Event ids go on from the stored value.
    machine.stream_opened(Millis(1), None);
    assert_eq!(
        all_transmits(&mut machine),
        vec![Transmit::Priming {
            event: EventId(500)
        }]
    );
}

mod random {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Input {
        Submit {
            timeout: u64,
        },
        Encode,
        Answer,
        CallerGone(usize),
        OpenStream,
        /// Reconnects naming an event this many ids before the last one handed out.
        Resume(u64),
        CloseStream,
        Advance(u64),
        Close,
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            4 => (1u64..2_000).prop_map(|timeout| Input::Submit { timeout }),
            4 => Just(Input::Encode),
            3 => Just(Input::Answer),
            2 => (0usize..16).prop_map(Input::CallerGone),
            1 => Just(Input::OpenStream),
            1 => (0u64..6).prop_map(Input::Resume),
            1 => Just(Input::CloseStream),
            3 => (0u64..700).prop_map(Input::Advance),
            1 => Just(Input::Close),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn exactly_one_done_per_request_and_never_over_the_limit(
            inputs in proptest::collection::vec(input(), 1..120),
            max_in_flight in 1usize..4,
            max_queued in 0usize..4,
            max_resend_bytes in 0usize..8,
        ) {
            let mut machine = ready(LifecycleLimits {
                liveness_interval: Some(Duration::from_millis(250)),
                max_resend_bytes,
                ..limits(max_in_flight, max_queued)
            });
            let mut now = Millis(0);
            let mut submitted: Vec<RequestKey> = Vec::new();
            let mut to_encode: Vec<(RequestKey, u64)> = Vec::new();
            let mut sent_ids: Vec<u64> = Vec::new();
            let mut dones: HashMap<RequestKey, usize> = HashMap::new();
            let mut generation = None;
            let mut last_event = 0;
            for input in inputs {
                match input {
                    Input::Submit { timeout } => {
                        if let Ok(key) = machine.submit(now, Millis(now.0 + timeout)) {
                            submitted.push(key);
                        }
                    }
                    Input::Encode => {
                        if let Some((key, id)) = to_encode.pop() {
                            machine.encoded(now, key, format!("{id}"));
                        }
                    }
                    Input::Answer => {
                        if let Some(id) = sent_ids.pop() {
                            machine.client_message(now, &answer(id, "a"));
                        }
                    }
                    Input::CallerGone(index) => {
                        if let Some(key) = submitted.get(index) {
                            machine.caller_gone(now, *key);
                        }
                    }
                    Input::OpenStream => generation = Some(machine.stream_opened(now, None)),
                    Input::Resume(back) => {
                        let seen = machine.next_event_id().saturating_sub(1 + back);
                        generation = Some(machine.stream_opened(now, Some(EventId(seen))));
                    }
                    Input::CloseStream => {
                        if let Some(generation) = generation.take() {
                            machine.stream_closed(now, generation);
                        }
                    }
                    Input::Advance(ms) => {
                        now = Millis(now.0 + ms);
                        if machine.poll_timeout().is_some_and(|at| at <= now) {
                            machine.handle_timeout(now);
                        }
                        // Whatever was due is handled: the next timeout is ahead.
                        prop_assert!(machine.poll_timeout().is_none_or(|at| at > now));
                    }
                    Input::Close => machine.close(now, "closed"),
                }
                while let Some(event) = machine.poll_event() {
                    match event {
                        Event::Encode { key, id } => to_encode.push((key, id)),
                        Event::Done { key, .. } => *dones.entry(key).or_default() += 1,
                        Event::Sent { .. } | Event::Expired => {}
                    }
                }
                while let Some(transmit) = machine.poll_transmit() {
                    let event = match &transmit {
                        Transmit::Message { event, .. } | Transmit::Priming { event } => {
                            Some(event.0)
                        }
                        Transmit::Ping => None,
                    };
                    if let Some(event) = event {
                        // Event ids strictly rise, across every stream.
                        prop_assert!(event > last_event, "{} after {}", event, last_event);
                        last_event = event;
                    }
                    if let Transmit::Message { text, request: Some(_), .. } = transmit {
                        // A resent request may be answered twice: the second reaches nobody.
                        sent_ids.push(text.parse().unwrap_or(0));
                    }
                }
                prop_assert!(machine.in_flight() <= max_in_flight);
                prop_assert!(machine.queued() <= max_queued);
                prop_assert!(machine.pending_count() <= machine.in_flight());
                // What is kept to be sent again stays in budget and goes with the requests.
                prop_assert!(machine.kept_bytes <= max_resend_bytes);
                if machine.pending_count() == 0 {
                    prop_assert_eq!(machine.kept_bytes, 0);
                }
            }
            // Closing ends the rest; then every request ended exactly once.
            machine.close(now, "end");
            while let Some(event) = machine.poll_event() {
                if let Event::Done { key, .. } = event {
                    *dones.entry(key).or_default() += 1;
                }
            }
            for key in &submitted {
                prop_assert_eq!(dones.get(key).copied(), Some(1), "{:?}", key);
            }
            prop_assert_eq!(dones.len(), submitted.len());
        }
    }
}
