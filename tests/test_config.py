import pytest
import tomllib

from heart_sr_tf.config import CONFIG_CLASSES, CONFIG_DIR, dump_toml, from_dict, load_config
from heart_sr_tf.errors import ConfigError


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.toml")))
def test_shipped_configs_load_and_round_trip(name):
    config = load_config(CONFIG_DIR / name, CONFIG_CLASSES["wgan" if name.startswith("wgan") else "srgan"])
    assert from_dict(type(config), tomllib.loads(dump_toml(config))) == config
    assert config.data.patch % config.data.scale == 0


def test_paper_and_cpu_sizes():
    assert load_config(CONFIG_DIR / "srgan_paper.toml").generator.blocks == 23
    cpu = load_config(CONFIG_DIR / "srgan_cpu.toml")
    assert (cpu.generator.blocks, cpu.generator.features) == (4, 32)


def test_unknown_key_and_wrong_type_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[generator]\nblockz = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: .*blockz"):
        load_config(bad)
    bad.write_text('[data]\nbatch_size = "many"\n')
    with pytest.raises(ConfigError, match="batch_size: expected int"):
        load_config(bad)
