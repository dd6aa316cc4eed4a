"""The base of the model classes: attribute access to the wire fields of an answer."""

from typing import Any, Dict, Generic, List, Optional, TypeVar

T = TypeVar("T", bound="Model")


class Model:
    """An object the API returned. Its fields are attributes; fields the server added after
    this package was built are kept too. `to_dict()` gives the wire form back."""

    _nested: Dict[str, Any] = {}

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_wire(cls, data: Dict[str, Any]) -> "Model":
        """The instance of `data`, a decoded JSON object, nested objects included."""
        from . import models

        fields = dict(data)
        for name, (class_name, is_list) in cls._nested.items():
            value = fields.get(name)
            if value is None:
                continue
            nested = getattr(models, class_name)
            if is_list:
                fields[name] = [nested.from_wire(v) for v in value]
            else:
                fields[name] = nested.from_wire(value)
        # Declared fields the answer left out (optional ones) read as None.
        for name in getattr(cls, "__annotations__", {}):
            fields.setdefault(name, None)
        return cls(**fields)

    def to_dict(self) -> Dict[str, Any]:
        """The wire form: nested models as dicts."""

        def plain(value: Any) -> Any:
            if isinstance(value, Model):
                return value.to_dict()
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return {k: plain(v) for k, v in vars(self).items()}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({shown})"


class Page(Generic[T]):
    """One page of a list: its `items`, and the `next_cursor` to pass for the next one."""

    def __init__(self, items: List[T], next_cursor: Optional[str]) -> None:
        self.items = items
        self.next_cursor = next_cursor

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Page(items={self.items!r}, next_cursor={self.next_cursor!r})"
