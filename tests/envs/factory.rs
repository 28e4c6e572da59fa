use factored_rl::Error;
use factored_rl::env::{ENV_NAMES, EnvConfigs, make_env, make_vec_env};

#[test]
fn every_listed_name_builds_and_unknown_names_are_named() {
    let configs = EnvConfigs::default();
    for name in ENV_NAMES {
        assert_eq!(make_env(name, &configs).unwrap().spec().name, name);
    }
    match make_env("pong", &configs) {
        Err(Error::Invalid { name, reason }) => {
            assert_eq!(name, "env");
            assert!(reason.contains("`pong`"), "{reason}");
            for valid in ENV_NAMES {
                assert!(reason.contains(valid), "{reason}");
            }
        }
        other => panic!(
            "expected an error, got {:?}",
            other.map(|e| e.spec().clone())
        ),
    }
    assert!(matches!(
        make_vec_env("recall", &configs, 0, 0),
        Err(Error::Invalid { name, .. }) if name == "num_envs"
    ));
}

#[test]
fn configs_read_from_json_with_defaults_and_reject_unknown_fields() {
    let configs: EnvConfigs = serde_json::from_str(r#"{"recall": {"gap": 20}}"#).unwrap();
    assert_eq!(configs.recall.gap, 20);
    assert_eq!(configs.recall.num_symbols, 4);
    assert_eq!(configs.lifecycle, EnvConfigs::default().lifecycle);
    let json = serde_json::to_string(&configs).unwrap();
    assert_eq!(serde_json::from_str::<EnvConfigs>(&json).unwrap(), configs);
    assert!(serde_json::from_str::<EnvConfigs>(r#"{"recall": {"gapp": 20}}"#).is_err());
    assert!(serde_json::from_str::<EnvConfigs>(r#"{"pong": {}}"#).is_err());
    let bad = EnvConfigs {
        cartpole: factored_rl::env::CartPoleConfig { max_steps: 0 },
        ..EnvConfigs::default()
    };
    assert!(matches!(
        make_env("cartpole", &bad),
        Err(Error::Invalid { name, .. }) if name == "cartpole.max_steps"
    ));
}
