// The role macros. Each expands, in the plugin crate, to one anonymous `const` block holding the
// bindings of the role's world (`__warden_world`, from `__private::world!`), the `Guest`
// implementations that convert between the SDK's types and that world's raw WIT types, and the
// world's export glue. Names inside the block cannot clash with the plugin's; registering a
// second plugin in the same component fails at link time (duplicate export symbols).

/// Register `$plugin`, which implements [`Discovery`](crate::Discovery), as this component's
/// discovery plugin (world `discovery-plugin`). Call it once per plugin crate.
#[macro_export]
macro_rules! discovery {
    ($plugin:ty $(,)?) => {
        $crate::__warden_plugin!($plugin, "discovery-plugin", [discovery]);
    };
}

/// Register `$plugin`, which implements [`Check`](crate::Check), as this component's check
/// plugin (world `check-plugin`). Call it once per plugin crate.
#[macro_export]
macro_rules! check {
    ($plugin:ty $(,)?) => {
        $crate::__warden_plugin!($plugin, "check-plugin", [check]);
    };
}

/// Register `$plugin`, which implements [`Remediation`](crate::Remediation), as this component's
/// remediation plugin (world `remediation-plugin`, which adds `fs-write` and
/// `service-control`). Call it once per plugin crate.
#[macro_export]
macro_rules! remediation {
    ($plugin:ty $(,)?) => {
        $crate::__warden_plugin!($plugin, "remediation-plugin", [remediation]);
    };
}

/// Register `$plugin`, which implements both [`Check`](crate::Check) and
/// [`Remediation`](crate::Remediation), as a remediation that also checks what it fixes (world
/// `check-remediation-plugin`). Call it once per plugin crate.
#[macro_export]
macro_rules! check_remediation {
    ($plugin:ty $(,)?) => {
        $crate::__warden_plugin!($plugin, "check-remediation-plugin", [check, remediation]);
    };
}

/// Register `$plugin`, which implements [`Ticketing`](crate::Ticketing), as this component's
/// ticketing plugin, a PSA connector (world `ticketing-plugin`). Call it once per plugin crate.
#[macro_export]
macro_rules! ticketing {
    ($plugin:ty $(,)?) => {
        $crate::__warden_plugin!($plugin, "ticketing-plugin", [ticketing]);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __warden_plugin {
    ($plugin:ty, $world:tt, [$($export:ident),+]) => {
        // The generated bindings and export glue are `unsafe`: they are the SDK's, not the plugin's.
        #[allow(unsafe_code)]
        const _: () = {
            $crate::__private::world!($world);
            type __WardenPlugin = $crate::__private::Adapter<$plugin>;
            $($crate::__warden_export!($export, $plugin);)+
            __warden_world::export!(__WardenPlugin with_types_in __warden_world);
        };
    };
}

/// The `Guest` implementation of one exported role interface.
#[doc(hidden)]
#[macro_export]
macro_rules! __warden_export {
    (discovery, $plugin:ty) => {
        type __Facts = __warden_world::exports::warden::plugin::discovery::FactGroup;
        type __Fact = __warden_world::exports::warden::plugin::discovery::Fact;
        type __FactValue = __warden_world::exports::warden::plugin::discovery::FactValue;

        impl __warden_world::exports::warden::plugin::discovery::Guest for __WardenPlugin {
            fn discover(
                config: ::std::string::String,
            ) -> ::core::result::Result<::std::vec::Vec<__Facts>, $crate::__private::RawPluginError>
            {
                let groups = <$plugin as $crate::Discovery>::discover(&config)?;
                ::core::result::Result::Ok(
                    groups
                        .into_iter()
                        .map(|group| __Facts {
                            kind: group.kind,
                            facts: group
                                .facts
                                .into_iter()
                                .map(|fact| __Fact {
                                    key: fact.key,
                                    value: match fact.value {
                                        $crate::FactValue::Text(v) => __FactValue::Text(v),
                                        $crate::FactValue::Integer(v) => __FactValue::Integer(v),
                                        $crate::FactValue::Float(v) => __FactValue::Float(v),
                                        $crate::FactValue::Boolean(v) => __FactValue::Boolean(v),
                                        $crate::FactValue::TextList(v) => __FactValue::TextList(v),
                                    },
                                })
                                .collect(),
                        })
                        .collect(),
                )
            }
        }
    };
    (check, $plugin:ty) => {
        type __CheckResult = __warden_world::exports::warden::plugin::check::CheckResult;
        type __Status = __warden_world::exports::warden::plugin::check::Status;
        type __Metric = __warden_world::exports::warden::plugin::check::Metric;

        impl __warden_world::exports::warden::plugin::check::Guest for __WardenPlugin {
            fn check(
                config: ::std::string::String,
            ) -> ::core::result::Result<__CheckResult, $crate::__private::RawPluginError> {
                let result = <$plugin as $crate::Check>::check(&config)?;
                ::core::result::Result::Ok(__CheckResult {
                    status: match result.status {
                        $crate::Status::Ok => __Status::Ok,
                        $crate::Status::Warning => __Status::Warning,
                        $crate::Status::Critical => __Status::Critical,
                        $crate::Status::Unknown => __Status::Unknown,
                    },
                    summary: result.summary,
                    metrics: result
                        .metrics
                        .into_iter()
                        .map(|m| __Metric {
                            name: m.name,
                            value: m.value,
                            unit: m.unit,
                        })
                        .collect(),
                })
            }
        }
    };
    (remediation, $plugin:ty) => {
        type __Action = __warden_world::exports::warden::plugin::remediation::Action;
        type __ActionKind = __warden_world::exports::warden::plugin::remediation::ActionKind;
        type __Outcome = __warden_world::exports::warden::plugin::remediation::ActionOutcome;
        type __OutcomeStatus = __warden_world::exports::warden::plugin::remediation::OutcomeStatus;

        fn __raw_action(a: $crate::Action) -> __Action {
            use $crate::ActionKind as K;
            __Action {
                id: a.id,
                kind: match a.kind {
                    K::Create => __ActionKind::Create,
                    K::Modify => __ActionKind::Modify,
                    K::Delete => __ActionKind::Delete,
                    K::Exec => __ActionKind::Exec,
                    K::ServiceStart => __ActionKind::ServiceStart,
                    K::ServiceStop => __ActionKind::ServiceStop,
                    K::ServiceRestart => __ActionKind::ServiceRestart,
                    K::Other => __ActionKind::Other,
                },
                target: a.target,
                description: a.description,
            }
        }

        fn __sdk_action(a: __Action) -> $crate::Action {
            use $crate::ActionKind as K;
            $crate::Action {
                id: a.id,
                kind: match a.kind {
                    __ActionKind::Create => K::Create,
                    __ActionKind::Modify => K::Modify,
                    __ActionKind::Delete => K::Delete,
                    __ActionKind::Exec => K::Exec,
                    __ActionKind::ServiceStart => K::ServiceStart,
                    __ActionKind::ServiceStop => K::ServiceStop,
                    __ActionKind::ServiceRestart => K::ServiceRestart,
                    __ActionKind::Other => K::Other,
                },
                target: a.target,
                description: a.description,
            }
        }

        impl __warden_world::exports::warden::plugin::remediation::Guest for __WardenPlugin {
            fn plan(
                config: ::std::string::String,
            ) -> ::core::result::Result<::std::vec::Vec<__Action>, $crate::__private::RawPluginError>
            {
                let actions = <$plugin as $crate::Remediation>::plan(&config)?;
                ::core::result::Result::Ok(actions.into_iter().map(__raw_action).collect())
            }

            fn apply(
                config: ::std::string::String,
                actions: ::std::vec::Vec<__Action>,
            ) -> ::core::result::Result<::std::vec::Vec<__Outcome>, $crate::__private::RawPluginError>
            {
                let actions = actions.into_iter().map(__sdk_action).collect();
                let outcomes = <$plugin as $crate::Remediation>::apply(&config, actions)?;
                ::core::result::Result::Ok(
                    outcomes
                        .into_iter()
                        .map(|o| __Outcome {
                            id: o.id,
                            status: match o.status {
                                $crate::OutcomeStatus::Applied => __OutcomeStatus::Applied,
                                $crate::OutcomeStatus::Skipped => __OutcomeStatus::Skipped,
                                $crate::OutcomeStatus::Failed => __OutcomeStatus::Failed,
                            },
                            detail: o.detail,
                        })
                        .collect(),
                )
            }
        }
    };
    (ticketing, $plugin:ty) => {
        type __IncidentRef = __warden_world::exports::warden::plugin::ticketing::IncidentRef;
        type __Ticket = __warden_world::exports::warden::plugin::ticketing::Ticket;
        type __NewTicket = __warden_world::exports::warden::plugin::ticketing::NewTicket;
        type __TicketNote = __warden_world::exports::warden::plugin::ticketing::TicketNote;

        fn __sdk_incident(i: __IncidentRef) -> $crate::IncidentRef {
            $crate::IncidentRef {
                monitor: i.monitor,
                incident: i.incident,
                external_ref: i.external_ref,
                tenant: i.tenant,
                host: i.host,
            }
        }

        fn __sdk_note(n: __TicketNote) -> $crate::TicketNote {
            $crate::TicketNote {
                incident: __sdk_incident(n.incident),
                ticket_id: n.ticket_id,
                text: n.text,
            }
        }

        fn __raw_ticket(t: $crate::Ticket) -> __Ticket {
            __Ticket {
                id: t.id,
                respond_by: t.respond_by,
                resolve_by: t.resolve_by,
            }
        }

        impl __warden_world::exports::warden::plugin::ticketing::Guest for __WardenPlugin {
            fn open(
                config: ::std::string::String,
                req: __NewTicket,
            ) -> ::core::result::Result<__Ticket, $crate::__private::RawPluginError> {
                let req = $crate::NewTicket {
                    incident: __sdk_incident(req.incident),
                    summary: req.summary,
                    description: req.description,
                };
                ::core::result::Result::Ok(__raw_ticket(
                    <$plugin as $crate::Ticketing>::open(&config, req)?,
                ))
            }

            fn note(
                config: ::std::string::String,
                req: __TicketNote,
            ) -> ::core::result::Result<__Ticket, $crate::__private::RawPluginError> {
                ::core::result::Result::Ok(__raw_ticket(
                    <$plugin as $crate::Ticketing>::note(&config, __sdk_note(req))?,
                ))
            }

            fn close(
                config: ::std::string::String,
                req: __TicketNote,
            ) -> ::core::result::Result<__Ticket, $crate::__private::RawPluginError> {
                ::core::result::Result::Ok(__raw_ticket(
                    <$plugin as $crate::Ticketing>::close(&config, __sdk_note(req))?,
                ))
            }
        }
    };
}
