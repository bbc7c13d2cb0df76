//! Tests of the bench report: scores, speeds and the rendered tables and page.

use super::*;

#[test]
fn names_skip_sentence_starts() {
    assert_eq!(
        capitalized_names("The talks in Saint Petersburg ended. Putin met Witkoff, said Leavitt."),
        ["Saint", "Petersburg", "Witkoff", "Leavitt"]
    );
}

#[test]
fn svg_has_a_point_per_model() {
    let report = BenchReport {
        schema: SCHEMA,
        task: "translate".into(),
        dataset: Dataset {
            name: "x".into(),
            items: 1,
            available: 1,
        },
        settings: Settings {
            runs: 1,
            speed_subset: 1,
            max_tokens: 1,
            decoding: "greedy".into(),
        },
        machine: Machine::detect(Some(1)),
        models: ["a<b", "c"]
            .iter()
            .map(|name| ModelReport {
                model: name.to_string(),
                path: String::new(),
                file_mib: 1.0,
                load_cold_s: 0.0,
                load_warm_s: 0.0,
                peak_rss_mib: None,
                translate: Some(
                    translate_report(
                        TranslateRun {
                            hypotheses: vec!["a cat".into()],
                            pass: vec![SentenceTiming {
                                latency_s: 0.5,
                                ttft_s: 0.1,
                                source_tokens: 4,
                                target_tokens: 3,
                            }],
                            repeats: vec![],
                            throughput: vec![Throughput {
                                parallel: 4,
                                sentences: 8,
                                seconds: 2.0,
                                sentences_per_s: 4.0,
                                tokens_per_s: 20.0,
                                kv_budget_mib: Some(64.0),
                            }],
                        },
                        &["the cat".to_string()],
                    )
                    .unwrap(),
                ),
                summarize: vec![],
            })
            .collect(),
        failures: vec![],
        notes: vec![],
    };
    let t = report.models[0].translate.as_ref().unwrap();
    assert_eq!(t.speed.sentences_per_s, 2.0);
    assert_eq!(t.speed.target_tokens_per_s, 6.0);
    assert!(table(&report).contains("4: 4.00"));
    let svg = scatter_svg(&report);
    assert_eq!(svg.matches("<circle").count(), 2);
    assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    assert!(html(&report).contains("<svg"));
}
