"""De-identification of DICOM datasets by the PS3.15 Annex E *Basic Application Level Confidentiality
Profile* (Table E.1-1, basic profile column), for the attributes a dataset actually holds.

What :func:`deidentify` does, in place, recursively (sequences included):

* every attribute of :data:`BASIC_PROFILE` present in the dataset gets its action: ``X`` removed,
  ``Z`` emptied, ``D`` replaced by a dummy value of its VR.  Where the table allows a choice (X/Z,
  Z/D, X/Z/D) the least destructive choice that keeps a Type 1/2 attribute valid is taken;
* ``U``: every UID that is not a DICOM-defined UID (root ``1.2.840.10008.``) is replaced through a
  :class:`UidMap`, the same original always giving the same replacement, so references inside and
  across the written objects stay consistent (SEG and SR still point at the de-identified source);
* private attributes and overlay/curve groups (50xx, 60xx) are removed (profile: X);
* beyond the table, any remaining person name (VR PN) is emptied;
* Patient Identity Removed = YES, De-identification Method (Code Sequence: DCM 113100) are set.

Pure pydicom; imported only when something is exported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["BASIC_PROFILE", "UidMap", "deidentify", "METHOD"]

METHOD = "PS3.15 E.1 Basic Application Level Confidentiality Profile"

# keyword -> action of Table E.1-1, basic profile column, choice resolved (see module docstring).
BASIC_PROFILE: dict[str, str] = {
    # patient
    "PatientName": "Z", "PatientID": "Z", "PatientBirthDate": "Z", "PatientSex": "Z", "PatientBirthTime": "X",
    "OtherPatientIDs": "X", "OtherPatientIDsSequence": "X", "OtherPatientNames": "X", "PatientBirthName": "X",
    "PatientAge": "X", "PatientSize": "X", "PatientWeight": "X", "PatientAddress": "X", "PatientComments": "X",
    "PatientMotherBirthName": "X", "PatientTelephoneNumbers": "X", "MilitaryRank": "X", "BranchOfService": "X",
    "CountryOfResidence": "X", "RegionOfResidence": "X", "EthnicGroup": "X", "Occupation": "X",
    "MedicalRecordLocator": "X", "IssuerOfPatientID": "X", "AdditionalPatientHistory": "X", "MedicalAlerts": "X",
    "Allergies": "X", "SmokingStatus": "X", "PregnancyStatus": "X", "LastMenstrualDate": "X",
    "PatientReligiousPreference": "X", "PatientInsurancePlanCodeSequence": "X", "PatientPrimaryLanguageCodeSequence": "X",
    "ResponsiblePerson": "X", "ResponsibleOrganization": "X", "PatientState": "X", "SpecialNeeds": "X",
    "ReferencedPatientSequence": "X", "ReferencedPatientPhotoSequence": "X", "PatientSexNeutered": "X",
    # study, series, visit, request
    "StudyDate": "Z", "StudyTime": "Z", "AccessionNumber": "Z", "StudyID": "Z", "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X", "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X", "StudyDescription": "X", "SeriesDescription": "X",
    "PhysiciansOfRecord": "X", "PhysiciansOfRecordIdentificationSequence": "X", "PerformingPhysicianName": "X",
    "PerformingPhysicianIdentificationSequence": "X", "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X", "OperatorsName": "Z", "OperatorIdentificationSequence": "X",
    "RequestingPhysician": "X", "RequestingService": "X", "RequestAttributesSequence": "X",
    "RequestedProcedureDescription": "X", "RequestedProcedureID": "X", "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepID": "X", "PerformedProcedureStepDescription": "X", "PerformedProcedureStepID": "X",
    "PerformedProcedureStepStartDate": "X", "PerformedProcedureStepStartTime": "X",
    "PerformedProcedureStepEndDate": "X", "PerformedProcedureStepEndTime": "X", "AdmissionID": "X",
    "AdmittingDiagnosesDescription": "X", "AdmittingDiagnosesCodeSequence": "X", "AdmittingDate": "X",
    "AdmittingTime": "X", "CurrentPatientLocation": "X", "VisitComments": "X", "ReasonForStudy": "X",
    "ReasonForTheRequestedProcedure": "X", "ReferencedStudySequence": "Z",
    "ReferencedPerformedProcedureStepSequence": "Z", "InterpretationAuthor": "X", "ProtocolName": "X",
    # equipment, institution
    "InstitutionName": "Z", "InstitutionAddress": "X", "InstitutionalDepartmentName": "X", "StationName": "Z",
    "DeviceSerialNumber": "D", "PlateID": "X", "CassetteID": "X", "DetectorID": "X", "GantryID": "X",
    "GeneratorID": "X", "AcquisitionDeviceProcessingDescription": "X", "InstitutionCodeSequence": "X",
    # dates and times of the acquisition
    "SeriesDate": "X", "SeriesTime": "X", "AcquisitionDate": "X", "AcquisitionTime": "X",
    "AcquisitionDateTime": "X", "ContentDate": "D", "ContentTime": "D", "InstanceCreationDate": "X",
    "InstanceCreationTime": "X", "TimezoneOffsetFromUTC": "X", "DateOfLastCalibration": "X",
    "TimeOfLastCalibration": "X", "DateOfSecondaryCapture": "X", "TimeOfSecondaryCapture": "X",
    # free text
    "ImageComments": "X", "DerivationDescription": "X", "TextComments": "X", "TextString": "X",
    "ContrastBolusAgent": "Z", "FrameComments": "X", "StudyComments": "X",
    "IdentifyingComments": "X", "ContentCreatorName": "Z", "VerifyingObserverName": "D",
    "PersonName": "D",
    # containers of original values
    "OriginalAttributesSequence": "X", "ModifiedAttributesSequence": "X", "DigitalSignaturesSequence": "X",
    "DataSetTrailingPadding": "X",
}

_DUMMY = {"DA": "20000101", "TM": "000000", "DT": "20000101000000", "PN": "ANONYMOUS", "LO": "ANONYMOUS",
          "SH": "ANONYMOUS", "CS": "ANONYMOUS", "LT": "ANONYMOUS", "ST": "ANONYMOUS", "UT": "ANONYMOUS"}
DICOM_ROOT = "1.2.840.10008."


@dataclass
class UidMap:
    """Original UID -> replacement, consistent across every dataset de-identified with one map."""

    mapping: dict[str, str] = field(default_factory=dict)

    def __call__(self, uid: str) -> str:
        if uid.startswith(DICOM_ROOT) or not uid:
            return uid
        if uid not in self.mapping:
            from pydicom.uid import generate_uid

            self.mapping[uid] = generate_uid()
        return self.mapping[uid]


def _dummy(vr: str) -> str:
    return _DUMMY.get(vr, "")


def _clean(ds: Dataset, uids: UidMap | None) -> None:
    for elem in list(ds):
        tag = elem.tag
        if tag.is_private or ((tag.group & 0xFF00) in (0x5000, 0x6000) and tag.group % 2 == 0):
            del ds[tag]
            continue
        action = BASIC_PROFILE.get(elem.keyword)
        if action == "X":
            del ds[tag]
            continue
        if action == "Z" or (action is None and elem.VR == "PN"):
            elem.value = [] if elem.VR == "SQ" else ""
            continue
        if action == "D":
            elem.value = _dummy(elem.VR)
            continue
        if elem.VR == "SQ":
            for item in elem.value:
                _clean(item, uids)
        elif elem.VR == "UI" and uids is not None and elem.value:
            if elem.VM > 1:
                elem.value = [uids(str(v)) for v in elem.value]
            else:
                elem.value = uids(str(elem.value))


def deidentify(ds: Dataset, uids: UidMap | None = None) -> Dataset:
    """Apply the basic profile to ``ds`` in place and return it.

    ``uids``: the map that replaces UIDs (one map per export, so references stay consistent); ``None``
    leaves UIDs alone (for objects whose UIDs are new already or were mapped before).
    """
    from pydicom.dataset import Dataset as _Dataset

    _clean(ds, uids)
    if uids is not None and getattr(ds, "file_meta", None) is not None:
        for kw in ("MediaStorageSOPInstanceUID",):
            if kw in ds.file_meta:
                setattr(ds.file_meta, kw, uids(str(getattr(ds.file_meta, kw))))
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = _Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "113100", "DCM", "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = [code]
    return ds
