"""Plain, consistent wording in the findings of the audit checks (helpers from the checks' own test modules)."""

from __future__ import annotations

import dataclasses

from test_evasion_check import measurement as evasion_measurement
from test_evasion_check import robust_finding
from test_extraction_check import _curve, _measurement, _theft
from test_integrity_check import SAFE
from test_inversion_check import _attribute, _group
from test_membership_check import UPPER, _figures, _judge, _summary
from test_poisoning_check import BackdoorScan, curve, judged

from modelshield.audit.checks.evasion import EVASION
from modelshield.audit.checks.integrity import INTEGRITY
from modelshield.audit.checks.inversion import INVERSION, InversionMeasurement
from modelshield.audit.checks.membership import MembershipMeasurement
from modelshield.audit.checks.signature import SIGNATURE, SignatureMeasurement, SignatureStatus
from modelshield.supply_chain.formats import ModelFormat


def test_label_flipping_says_which_way_accuracy_moved() -> None:
    gain = judged(curve([(0.0, 0.0, 0.9)]), flips=curve([(0.0, 0.018, 0.982), (0.1, 0.016, 0.984)]))
    finding = gain["poisoning.label-flip"]
    assert "costs -" not in finding.description
    assert "at random does not lower clean accuracy (98.2% -> 98.4%)" in finding.description
    assert finding.title == "Flipping 10% of the training labels does not lower clean accuracy"
    loss = judged(curve([(0.0, 0.0, 0.9)]), flips=curve([(0.0, 0.035, 0.965), (0.1, 0.07, 0.93)]))
    assert "costs 3.5 points of clean accuracy (96.5% -> 93.0%)" in loss["poisoning.label-flip"].description


def test_label_flipping_reports_accuracy_not_attack_success() -> None:
    finding = judged(curve([(0.0, 0.0, 0.9)]))["poisoning.label-flip"]
    assert "succeeds" not in finding.description  # its "success" is the test error
    assert "removed 80% of the flipped labels" in finding.description
    assert "the model's clean accuracy is 93.0%" in finding.description
    backdoor = judged(curve([(0.0, 0.0, 0.9)]))["poisoning.backdoor"]
    assert "the attack succeeds 10.0% of the time (clean accuracy 93.0%)" in backdoor.description


def test_a_single_flagged_class_is_one_class() -> None:
    scan = BackdoorScan(flagged=(2,), anomaly_index=(0.5, 0.0, 3.5), mask_norms=(9.0, 10.0, 1.0),
                        attack_success=(0.9,) * 3, threshold=2.0, inputs=300)  # fmt: skip
    one = judged(curve([(0.0, 0.0, 0.9)]), scan=scan)["poisoning.backdoor-scan"].description
    assert "trigger to class 2 (anomaly index 3.5 > 2)" in one and "(es)" not in one
    two = dataclasses.replace(scan, flagged=(0, 2), anomaly_index=(3.0, 0.0, 3.5))
    assert (
        "trigger to classes 0, 2 (" in judged(curve([(0.0, 0.0, 0.9)]), scan=two)["poisoning.backdoor-scan"].description
    )


def test_membership_speaks_plainly() -> None:
    finding = _judge(MembershipMeasurement(attacks=(_figures("loss", _summary(2 * UPPER, supported=False)),)))
    for text in (finding.title, finding.description, finding.remediation):
        assert "ouched" not in text  # "vouched-for odds" is jargon
    claim = "When the attack claims a record was in the training data, at a low false-positive rate, it is right"
    assert f"{claim} at odds of at least 2.0 to 1" in finding.description
    assert "300 non-members cannot measure a false-positive rate below" in finding.description


def test_evasion_says_what_share_of_the_inputs_changes() -> None:
    finding = robust_finding(EVASION.judge(evasion_measurement(robust_at_reference=0.45, clean=0.9)))
    assert "turn right answers into wrong ones on 45% of the inputs" in finding.description


def test_integrity_reads_for_every_format_detail() -> None:
    empty = dataclasses.replace(SAFE, format=ModelFormat.UNKNOWN, detail="empty file", suffix_matches=None)
    text = " ".join(f.description for f in INTEGRITY.judge(empty))
    assert "a empty" not in text and "Content of model.safetensors (1,234 bytes): empty file." in text
    pickled = dataclasses.replace(SAFE, format=ModelFormat.PICKLE, detail="pickle stream, protocol 4",
                                  can_execute_code=True, suffix_matches=False)  # fmt: skip
    text = " ".join(f.description for f in INTEGRITY.judge(pickled))
    assert "is a pickle" not in text and "Content of model.safetensors: pickle stream, protocol 4." in text
    assert "its content is something else: pickle stream, protocol 4." in text


def test_extraction_gives_one_figure_per_training_record() -> None:
    m = dataclasses.replace(_measurement(_curve([(84, 0.8), (168, 0.9)])), training_records=1347)
    finding = _theft(m)
    assert finding.metrics["queries_per_training_record"] == 0.125
    assert "(0.125 per training record)" in finding.description


def test_attribute_inference_says_how_many_records_it_tried() -> None:
    (finding,) = INVERSION.judge(
        InversionMeasurement(model="X", attributes=(_attribute(_group(0.25, 0.1), _group(0.0, 0.0)),))
    )
    assert "tried on 100 training records, infers it for 65% of them" in finding.description


def test_commands_in_signature_remedies_are_code() -> None:
    (unsigned,) = SIGNATURE.judge(SignatureMeasurement(SignatureStatus.UNSIGNED, "m.skops", "m.skops.sig"))
    assert (
        "(`modelshield keygen --out keys/ && modelshield sign m.skops --key keys/modelshield.key`)"
        in unsigned.remediation
    )
