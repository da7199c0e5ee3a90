"""latentds.registry: the one name check behind the model-family and public-dataset registries."""

import pytest

from latentds.errors import InvalidParameterError, LatentdsError, RegistrationError, UnknownNameError
from latentds.registry import Registry


class First:
    pass


class Second:
    pass


def test_a_taken_or_invalid_name_is_a_registration_error_naming_both():
    registry = Registry("widget")
    registry.add("spoke", First)
    with pytest.raises(RegistrationError, match=r"widget 'spoke' is already registered by test_registry\.First; "
                                                r"test_registry\.Second must choose another name"):
        registry.add("spoke", Second)
    for bad in ("Spoke", "2spoke", "spoke-2", "spo.ke", "", None):
        with pytest.raises(RegistrationError, match="must be lower-case letters, digits and '_'"):
            registry.add(bad, Second)
    registry.add("spoke", First)  # the same class again (its module re-imported) replaces the entry
    assert registry.names() == ["spoke"] and registry.get("spoke") is First
    # a class statement's error: a LatentdsError, and a TypeError as a bad class definition is
    assert issubclass(RegistrationError, LatentdsError) and issubclass(RegistrationError, TypeError)


def test_an_unknown_name_suggests_the_closest_and_lists_the_choices():
    registry = Registry("widget")
    registry.add("spoke", First)
    registry.add("sprocket", Second)
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'spokes' \(did you mean 'spoke'\?\); choose one of: "
                                               r"spoke, sprocket$"):
        registry.get("spokes")
    with pytest.raises(UnknownNameError, match=r"^config.json: unknown widget 'zzz'; choose one of: spoke, sprocket$"):
        registry.get("zzz", where="config.json")
    with pytest.raises(UnknownNameError, match="unknown widget None; choose one of"):
        registry.get(None)
    with pytest.raises(UnknownNameError, match=r"unknown widget \['x'\]"):  # whatever a JSON file held
        registry.get(["x"])
    with pytest.raises(InvalidParameterError, match="none registered"):
        Registry("widget").get("spoke")


def test_discovery_runs_on_first_lookup_only_for_get_and_names():
    calls = []
    registry = Registry("widget", discover=lambda: calls.append(1) or registry.add("found", First))
    assert "found" not in registry and len(registry) == 0 and not calls  # membership looks at what is there now
    assert registry.names() == ["found"] and registry["found"] is First and list(registry) == ["found"]
    assert len(calls) == 2


def test_a_scope_undoes_what_is_registered_inside_it():
    registry = Registry("widget")
    registry.add("kept", First)
    with registry.scope():
        registry.add("throwaway", Second)
        registry.pop("kept")
        assert registry.names() == ["throwaway"]
    assert registry.names() == ["kept"]


def test_a_test_family_and_a_test_dataset_do_not_leak_into_the_global_registries():
    import torch

    from latentds.datasets.public import REGISTRY as DATASETS
    from latentds.datasets.public import PublicDataset, dataset_names
    from latentds.zoo.base import REGISTRY as FAMILIES
    from latentds.zoo.base import LatentModel, ModelConfig, create, families

    families_before, datasets_before = families(), dataset_names()
    with FAMILIES.scope(), DATASETS.scope():
        class Tiny(LatentModel, family="test_tiny"):
            Config = ModelConfig

            def __init__(self, config=None):
                super().__init__(config)
                self.w = torch.nn.Parameter(torch.zeros(1))

            def losses(self, batch, step=0):
                return {"model": {"loss": self.w.sum()}}

        class Throwaway(PublicDataset, name="test_throwaway_scoped"):
            root_help = "anywhere"

            def __len__(self):
                return 0

            def __getitem__(self, index):
                raise IndexError(index)

        assert create("test_tiny").family == "test_tiny" and "test_throwaway_scoped" in dataset_names()
        with pytest.raises(TypeError, match="'test_tiny' is already registered by .*Tiny"):
            class Other(LatentModel, family="test_tiny"):  # noqa: F841
                Config = ModelConfig
    assert families() == families_before and dataset_names() == datasets_before
    with pytest.raises(InvalidParameterError, match=r"unknown model family 'test_tiny'.*choose one of: beta_vae"):
        create("test_tiny")


def test_both_registries_word_their_errors_alike():
    from latentds.datasets.public import dataset_class
    from latentds.zoo.base import create

    with pytest.raises(UnknownNameError, match=r"unknown model family 'vea' \(did you mean 'vae'\?\)"):
        create("vea")
    with pytest.raises(UnknownNameError, match=r"unknown public dataset 'celeb' \(did you mean 'celeba'\?\)"):
        dataset_class("celeb")


class Late:
    rank = 2


class Early:
    rank = 1


class AlsoEarly:
    rank = 1


def test_an_ordered_registry_lists_and_suggests_in_its_order():
    registry = Registry("widget", order=lambda obj: obj.rank)
    for name, obj in (("late", Late), ("early", Early), ("also_early", AlsoEarly)):
        registry.add(name, obj)
    assert registry.names() == list(registry) == ["early", "also_early", "late"]  # ties: registration order
    assert [name for name, _ in registry.items()] == registry.names()
    with pytest.raises(UnknownNameError, match=r"'earyl' \(did you mean 'early'\?\); choose one of: early, "
                                               r"also_early, late$"):
        registry.get("earyl")


def test_an_owner_other_than_the_object_is_what_re_registration_compares():
    registry = Registry("widget")
    registry.add("spoke", object(), owner=First)
    registry.add("spoke", object(), owner=First)  # the same owner again: replaced
    assert registry.owner("spoke") == "test_registry.First" and registry.owner("nothing") is None
    with pytest.raises(RegistrationError, match=r"already registered by test_registry\.First; "
                                                r"test_registry\.Second must choose another name"):
        registry.add("spoke", object(), owner=Second)


def test_families_datasets_and_probes_are_one_registry_filled_by_one_discovery_helper():
    from latentds.analysis.registry import PROBES
    from latentds.datasets.public import REGISTRY as DATASETS
    from latentds.discovery import PackageModules
    from latentds.zoo.base import REGISTRY as FAMILIES

    for registry in (FAMILIES, DATASETS, PROBES):
        assert type(registry) is Registry and isinstance(registry.discovery, PackageModules)
        with pytest.raises(UnknownNameError, match=r"did you mean"):
            registry.get(registry.names()[0] + "x")
