"""The trusted oracle of the ``email_validation`` task: ``email-validator`` under one policy.

The policy (:data:`POLICY`): address syntax only, no DNS (``check_deliverability=False``);
quoted local parts and domain literals (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``) allowed;
internationalised addresses allowed (SMTPUTF8); ``strict`` length checks (a local part of at
most 64 octets). email-validator also refuses special-use and reserved domains (``localhost``,
``*.test``, ``*.invalid``, ``*.local``...) and a domain without a dot: such addresses are
labelled invalid, as they cannot be delivered on the public internet.

It is the one source of labels: the fixed suite was labelled by it
(:func:`hyperagents.tasks.email_validation._suite.build_suite`), and inputs proposed later (the
arena) are labelled by it, in the engine, never by an agent.
"""

from __future__ import annotations

from typing import Any

from hyperagents.exceptions import TaskError

__all__ = ["POLICY", "oracle_label", "oracle_version"]

POLICY: dict[str, Any] = {
    "check_deliverability": False,
    "allow_quoted_local": True,
    "allow_domain_literal": True,
    "allow_smtputf8": True,
    "strict": True,
}

_MISSING = (
    "the email_validation task's oracle needs the email-validator package: "
    "pip install 'hyperagents[arena]' (or pip install email-validator)"
)


def _module() -> Any:
    try:
        import email_validator
    except ImportError as exc:
        raise TaskError(_MISSING) from exc
    return email_validator


def oracle_version() -> str:
    """The installed email-validator's version.

    Raises:
        TaskError: email-validator is not installed.
    """
    return str(getattr(_module(), "__version__", "unknown"))


def oracle_label(address: str) -> tuple[bool, str]:
    """Whether ``address`` is valid under :data:`POLICY`, and why not ("" when valid).

    Raises:
        TaskError: email-validator is not installed.
    """
    module = _module()
    if not isinstance(address, str):
        return False, "not a string"
    try:
        module.validate_email(address, **POLICY)
    except module.EmailNotValidError as exc:
        return False, str(exc)
    except (ValueError, UnicodeError) as exc:  # pragma: no cover - defensive: odd code points
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""
