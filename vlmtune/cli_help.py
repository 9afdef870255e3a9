"""`--help` that shows each option's default: argparse's ArgumentDefaultsHelpFormatter, except where the
default says nothing (None, False) or the help already names it; an option without help still shows it."""
import argparse
import copy


def _says_something(action) -> bool:
    return bool(action.option_strings) and action.default not in (None, False, argparse.SUPPRESS)


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    def _format_action(self, action):
        if not action.help and _says_something(action):
            action = copy.copy(action)
            action.help = 'default: %(default)s'
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ''
        if _says_something(action) and 'default' not in text.lower():
            text += ' (default: %(default)s)'
        return text
